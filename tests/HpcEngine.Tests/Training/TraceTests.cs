using System.Diagnostics;
using System.Text.Json;
using HpcEngine.Diagnostics;

namespace HpcEngine.Tests.Training;

[TestFixture]
public class TraceTests
{
    [Test]
    public void Spans_of_several_ranks_merge_into_one_chrome_trace()
    {
        string dir = TestSupport.TempDir("hpc-trace-");
        try
        {
            for (int rank = 0; rank < 2; rank++)
            {
                var t = new TraceRecorder(rank);
                long start = Stopwatch.GetTimestamp();
                t.Add("forward+backward", "compute", start, 0.002);
                t.Add("nothing", "compute", start, 0); // empty spans are dropped
                t.Write(Path.Combine(dir, $"trace-rank{rank}.json"));
                Assert.That(t.Count, Is.EqualTo(1));
            }
            string merged = Path.Combine(dir, "trace.json");
            TraceRecorder.Merge([Path.Combine(dir, "trace-rank0.json"), Path.Combine(dir, "trace-rank1.json")], merged);
            using var doc = JsonDocument.Parse(File.ReadAllText(merged));
            var spans = doc
                .RootElement.GetProperty("traceEvents")
                .EnumerateArray()
                .Where(e => e.GetProperty("ph").GetString() == "X")
                .ToArray();
            Assert.That(spans.Select(s => s.GetProperty("pid").GetInt32()), Is.EquivalentTo(new[] { 0, 1 }));
            Assert.That(
                spans.All(s => Math.Abs(s.GetProperty("dur").GetDouble() - 2000) < 1),
                Is.True,
                "durations in microseconds"
            );

            File.WriteAllText(Path.Combine(dir, "bad.json"), "{\"events\": []}");
            var ex = Assert.Throws<InvalidDataException>(() =>
                TraceRecorder.Merge([Path.Combine(dir, "bad.json")], merged)
            );
            Assert.That(ex!.Message, Does.Contain("bad.json"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
