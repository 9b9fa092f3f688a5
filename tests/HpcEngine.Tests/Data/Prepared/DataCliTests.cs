using System.Text.Json;

namespace HpcEngine.Tests.Data.Prepared;

/// <summary>The data pipeline through the CLI, as users run it: data prepare, data inspect, train --dataset (one
/// process and two workers), predict on the prepared test split and on raw inputs, and the bad inputs with their exit
/// code 2 and one-line errors.</summary>
public class DataCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = TestSupport.TempDir("datacli");

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private (int Exit, string Stdout, string Stderr) Cli(params string[] args) => TestSupport.RunCli(args);

    [Test]
    public void Prepare_inspect_train_and_predict_raw_images()
    {
        string tree = Path.Combine(_dir, "tree"),
            ds = Path.Combine(_dir, "ds"),
            ck = Path.Combine(_dir, "ck"),
            spec = Path.Combine(_dir, "spec.json");
        PreparedTestData.WriteImageTree(tree, perClass: 40);
        File.WriteAllText(
            spec,
            """
            { "channels": 3, "split": { "test_fraction": 0.25, "seed": 2 },
              "transforms": [ { "op": "resize", "size": [12, 12] }, { "op": "to-float" }, { "op": "normalize" } ] }
            """
        );
        var p = Cli("data", "prepare", "--source", "images:" + tree, "--out", ds, "--spec", spec, "--workers", "2");
        Assert.That(p.Exit, Is.EqualTo(0), p.Stderr);
        Assert.That(p.Stdout, Does.Contain("prepared 90 train, 30 test samples"));
        p = Cli("data", "prepare", "--source", "images:" + tree, "--out", ds, "--spec", spec);
        Assert.That(p.Stdout, Does.Contain("up to date"));
        var i = Cli("data", "inspect", ds, "--verify", "--json", Path.Combine(_dir, "inspect.json"));
        Assert.That(i.Exit, Is.EqualTo(0), i.Stderr);
        Assert.That(i.Stdout, Does.Contain("sample: image [3, 12, 12] uint8; 3 classes").And.Contain("verified: all"));
        Assert.That(i.Stdout, Does.Contain("red").And.Contain("channel 2"));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "inspect.json"))))
            Assert.That(doc.RootElement.GetProperty("verified").GetBoolean(), Is.True);

        var t = Cli(
            "train",
            "--model",
            "cnn",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--dataset",
            ds,
            "--checkpoint-dir",
            ck,
            "--json",
            Path.Combine(_dir, "r.json")
        );
        Assert.That(t.Exit, Is.EqualTo(0), t.Stderr);
        Assert.That(t.Stdout, Does.Contain("90 training, 30 test samples"));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "r.json"))))
            Assert.That(doc.RootElement.GetProperty("final_test_accuracy").GetDouble(), Is.GreaterThan(0.8));

        var e = Cli("predict", "--checkpoint", ck, "--dataset", ds);
        Assert.That(e.Exit, Is.EqualTo(0), e.Stderr);
        Assert.That(e.Stdout, Does.Contain("30 test samples").And.Contain("green"));
        string[] raw = [Path.Combine(tree, "red", "img-001.png"), Path.Combine(tree, "blue", "img-002.png")];
        var s = Cli(
            "predict",
            "--checkpoint",
            ck,
            "--input",
            string.Join(",", raw),
            "--json",
            Path.Combine(_dir, "p.json")
        );
        Assert.That(s.Exit, Is.EqualTo(0), s.Stderr);
        Assert.That(s.Stdout, Does.Contain("img-001.png: red").And.Contain("img-002.png: blue"));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "p.json"))))
            Assert.That(doc.RootElement.GetProperty("predictions").GetArrayLength(), Is.EqualTo(2));
    }

    [Test]
    public void Train_a_table_with_two_workers_and_score_its_raw_rows()
    {
        string csv = Path.Combine(_dir, "t.csv"),
            ds = Path.Combine(_dir, "ds"),
            ck = Path.Combine(_dir, "ck");
        double majority = PreparedTestData.WriteTable(csv, 800, seed: 4);
        var p = Cli("data", "prepare", "--source", "csv:" + csv, "--out", ds, "--label", "label");
        Assert.That(p.Exit, Is.EqualTo(0), p.Stderr);
        var t = Cli(
            "launch",
            "--nproc-per-node",
            "2",
            "--",
            "hpcengine",
            "train",
            "--model",
            "mlp",
            "--epochs",
            "6",
            "--batch-size",
            "16",
            "--dataset",
            ds,
            "--checkpoint-dir",
            ck,
            "--json",
            Path.Combine(_dir, "r.json")
        );
        Assert.That(t.Exit, Is.EqualTo(0), t.Stdout + t.Stderr);
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "r.json"))))
            Assert.That(
                doc.RootElement.GetProperty("final_test_accuracy").GetDouble(),
                Is.GreaterThan(majority + 0.15)
            );
        var s = Cli("predict", "--checkpoint", ck, "--input", csv);
        Assert.That(s.Exit, Is.EqualTo(0), s.Stderr);
        Assert.That(s.Stdout, Does.Contain($"{csv}:2: ").And.Contain("accuracy on the labelled rows"));
    }

    [Test]
    public void Bad_inputs_end_in_one_line_and_exit_code_2()
    {
        string ds = Path.Combine(_dir, "ds"),
            csv = Path.Combine(_dir, "t.csv");
        PreparedTestData.WriteTable(csv, 100);
        void Fails(string[] args, string expected)
        {
            var r = Cli(args);
            Assert.That(r.Exit, Is.EqualTo(2), string.Join(' ', args) + "\n" + r.Stdout + r.Stderr);
            Assert.That(r.Stderr, Does.Contain(expected), string.Join(' ', args));
        }
        Fails(["data", "prepare", "--source", "parquet:" + csv, "--out", ds], "a source is idx:DIR");
        Fails(
            ["data", "prepare", "--source", "csv:" + csv, "--out", ds, "--label", "price"],
            "label column 'price' does not exist"
        );
        Fails(
            ["data", "prepare", "--source", "csv:" + csv, "--out", ds, "--label", "label", "--shard-size", "big"],
            "--shard-size 'big'"
        );
        Fails(["data", "inspect", Path.Combine(_dir, "nothing")], "no such dataset directory");
        Fails(
            ["train", "--model", "cnn", "--epochs", "1", "--dataset", Path.Combine(_dir, "nothing")],
            "no such dataset directory"
        );
        Assert.That(
            Cli("data", "prepare", "--source", "csv:" + csv, "--out", ds, "--label", "label").Exit,
            Is.EqualTo(0)
        );
        Fails(["train", "--model", "cnn", "--epochs", "1", "--dataset", ds], "model cnn takes images [C, H, W]");
        Fails(["train", "--model", "mlp", "--epochs", "1", "--dataset", ds, "--augment"], "augmentation");
        Fails(["train", "--model", "mlp", "--epochs", "1", "--dataset", ds, "--data", _dir], "give one");
    }
}
