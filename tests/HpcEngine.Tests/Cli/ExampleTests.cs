using HpcEngine.Examples.Embedding;

namespace HpcEngine.Tests.Cli;

[TestFixture]
public class ExampleTests
{
    [Test]
    public void The_embedding_example_trains_saves_reloads_and_predicts()
    {
        string weights = Path.Combine(TestSupport.TempDir("hpc-ex-"), "w.safetensors");
        var log = new StringWriter();
        using (var scope = new TensorScope())
        {
            double acc = FashionExample.Run(null, epochs: 1, weights, log);
            Assert.That(acc, Is.GreaterThan(0.7), log.ToString());
        }
        Assert.That(File.Exists(weights), Is.True);
        Assert.That(log.ToString(), Does.Contain("accuracy of the reloaded model"));
    }
}
