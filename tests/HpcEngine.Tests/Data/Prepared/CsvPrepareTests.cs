using System.Runtime.InteropServices;
using System.Text.Json;
using HpcEngine.Data.Sharded;
using HpcEngine.Datasets.Prepare;
using HpcEngine.Training;

namespace HpcEngine.Tests.Data.Prepared;

/// <summary>Preparing a CSV table: inferred types, statistics from the training split only, one-hot with an "other"
/// slot, imputation with indicators; a model trained on it beats the majority class, and raw rows scored through the
/// recorded preprocessing give the prepared features and predictions exactly. Bad rows are named by file, line and
/// column.</summary>
public class CsvPrepareTests
{
    private string _dir = "";
    private string _csv = "";

    [SetUp]
    public void SetUp()
    {
        _dir = TestSupport.TempDir("csv");
        _csv = Path.Combine(_dir, "table.csv");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private static PipelineSpec Spec =>
        new()
        {
            Label = "label",
            Columns = new Dictionary<string, string> { ["id"] = "ignore" },
        };

    private PrepareResult Prepare(PipelineSpec? spec = null, string name = "ds") =>
        DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse("csv:" + _csv),
                OutDir = Path.Combine(_dir, name),
                Spec = spec ?? Spec,
            }
        );

    [Test]
    public void Columns_are_typed_encoded_and_fitted_on_the_training_split()
    {
        File.WriteAllText(
            _csv,
            "id,age,city,label\n1,20,paris,a\n2,,rome,b\n3,40,paris,a\n4,30,NA,b\n5,50,oslo,a\n6,60,rome,b\n7,70,paris,a\n8,80,rome,b\n9,90,lima,a\n10,100,paris,b\n"
        );
        var m = Prepare(
            Spec with
            {
                Split = new SplitSpec { TestFraction = 0.2, Seed = 1 },
            }
        ).Manifest;
        Assert.That(m.Classes, Is.EqualTo(new[] { "a", "b" }));
        var enc = RawInputs.FromJson(m.Preprocessing.GetRawText());
        var tabular = m.Preprocessing.GetProperty("tabular").Deserialize<TabularEncoder>()!;
        var age = tabular.Columns.Single(c => c.Name == "age");
        var city = tabular.Columns.Single(c => c.Name == "city");
        Assert.That(age.Type, Is.EqualTo("numeric"));
        Assert.That(city.Type, Is.EqualTo("categorical"));
        Assert.That(tabular.Ignored, Is.EqualTo(new[] { "id" }));
        // Statistics over the 8 training rows only: which rows are in test follows from the seeded split.
        using var train = ShardedDataset.Open(Path.Combine(_dir, "ds"));
        Assert.That(train.Count, Is.EqualTo(8));
        Assert.That(m.Feature.Shape[0], Is.EqualTo(tabular.Width));
        Assert.That(m.Feature.Names, Does.Contain("age").And.Contain("city=<other>"));
        // Standardised over train: the encoded age column has mean 0 over the present training values.
        int ageAt = m.Feature.Names!.ToList().IndexOf("age");
        var ages = Enumerable
            .Range(0, train.Count)
            .Select(i => MemoryMarshal.Cast<byte, float>(train.Sample(i))[ageAt])
            .ToList();
        Assert.That(Math.Abs(ages.Average()), Is.LessThan(0.3)); // imputed medians pull it a little off 0
        // An unseen category goes to "other"; a missing value is imputed and flagged.
        var f = new float[tabular.Width];
        var (cols, _) = tabular.Bind(new[] { "id", "age", "city", "label" }, "x", false);
        tabular.Encode(["0", "", "tokyo", "a"], cols, f, "x");
        var names = m.Feature.Names!.ToList();
        Assert.That(f[names.IndexOf("city=<other>")], Is.EqualTo(1));
        Assert.That(f[names.IndexOf("age")], Is.EqualTo((float)((age.Median - age.Mean) / age.Std)));
        if (age.Indicator)
            Assert.That(f[names.IndexOf("age:missing")], Is.EqualTo(1));
        Assert.That(enc.Kind, Is.EqualTo("tabular"));
    }

    [Test]
    public void A_model_trained_on_the_table_beats_the_majority_class_and_raw_rows_score_identically()
    {
        double majority = PreparedTestData.WriteTable(_csv, 1500, seed: 3);
        Prepare();
        string ds = Path.Combine(_dir, "ds");
        using var train = ShardedDataset.Open(ds);
        using var test = ShardedDataset.Open(ds, "test");
        var config = TrainConfig.For("mlp") with
        {
            Epochs = 8,
            BatchSize = 32,
            Lr = 0.05,
            CheckpointDir = Path.Combine(_dir, "ck"),
        };
        var r = Trainer.Run(config, train, test, "table");
        Assert.That(r.FinalTestAccuracy, Is.GreaterThan(majority + 0.2), $"majority baseline {majority:F3}");
        // The test rows, raw from the CSV, through the checkpoint's preprocessing.
        string model = Directory.GetFiles(Path.Combine(_dir, "ck"), "model-*.safetensors").Max()!;
        using var tf = HpcEngine.IO.Safetensors.Open(model);
        var input = ModelInput.Read(tf.Metadata);
        Assert.That(input.IsPixels, Is.False);
        Assert.That(input.ClassNames, Is.EqualTo(new[] { "no", "yes" }));
        var lines = File.ReadAllLines(_csv);
        var testRows = test.Manifest.Splits["test"].Samples;
        // Reconstruct the test rows in order: the split is a function of (n, seed), the same the preparer used.
        var (_, testAt) = Splitting.Fraction(lines.Length - 1, new SplitSpec());
        Assert.That(testAt, Has.Length.EqualTo(testRows));
        string raw = Path.Combine(_dir, "raw.csv");
        File.WriteAllLines(raw, new[] { lines[0] }.Concat(testAt.Select(i => lines[i + 1])));
        var (rows, _, labelled) = RawInputs.FromJson(input.Preprocessing).Rows(raw);
        Assert.That(labelled, Is.True);
        using var net = HpcEngine.NN.Models.Create("mlp", null, input.SampleShape, input.Classes);
        net.LoadStateDict(HpcEngine.IO.Safetensors.Load(model));
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.That(rows.Sample(i).SequenceEqual(test.Sample(i)), $"row {i}: features differ");
            Assert.That(rows.Label(i), Is.EqualTo(test.Label(i)));
        }
        var fromRaw = Predictions.Of(net, rows);
        var fromShards = Predictions.Of(net, test);
        Assert.That(fromRaw.Select(p => p.Class), Is.EqualTo(fromShards.Select(p => p.Class)));
        Assert.That(fromRaw.SelectMany(p => p.Probabilities), Is.EqualTo(fromShards.SelectMany(p => p.Probabilities)));
    }

    [Test]
    public void A_row_with_a_wrong_field_count_or_a_bad_number_is_named_by_file_line_and_column()
    {
        File.WriteAllText(_csv, "id,x,label\n1,2.5,a\n2,3.5,b\n3,4.5\n4,1.5,a\n");
        var e = Assert.Throws<DatasetException>(() => Prepare())!;
        Assert.That(e.Where, Is.EqualTo($"{_csv}:4"));
        Assert.That(e.Message, Does.Contain("2 fields where the header has 3"));
        var skipped = Prepare(Spec with { OnError = "skip" }).Manifest;
        Assert.That(skipped.Skipped.Single().Item, Is.EqualTo($"{_csv}:4"));
        Assert.That(skipped.Splits.Values.Sum(s => s.Samples), Is.EqualTo(3));

        File.WriteAllText(_csv, "id,x,label\n1,2.5,a\n2,3.5,b\n3,4.5,a\n4,1.5,b\n");
        string bad = Path.Combine(_dir, "bad.csv");
        File.WriteAllText(bad, "id,x,label\n1,2.5,a\n2,abc,b\n");
        Prepare(name: "ok");
        var pre = DatasetManifest.Read(Path.Combine(_dir, "ok")).Preprocessing.GetRawText();
        e = Assert.Throws<DatasetException>(() => RawInputs.FromJson(pre).Rows(bad))!;
        Assert.That(e.Where, Is.EqualTo($"{bad}:3"));
        Assert.That(e.Message, Does.Contain("column 'x'").And.Contain("'abc' is not a number"));
    }

    [Test]
    public void A_bad_number_in_a_numeric_column_is_named_at_preparation_and_zero_samples_left_is_refused()
    {
        File.WriteAllText(_csv, "id,x,label\n1,2.5,a\n2,3.5,b\n3,4.x5,a\n4,1.5,b\n5,2.0,a\n");
        var spec = Spec with
        {
            Columns = new Dictionary<string, string> { ["id"] = "ignore", ["x"] = "numeric" },
        };
        var e = Assert.Throws<DatasetException>(() =>
            Prepare(
                spec with
                {
                    Split = new SplitSpec { TestFraction = 0.2, Seed = 9 },
                }
            )
        )!;
        Assert.That(e.Where, Is.EqualTo($"{_csv}:4"));
        Assert.That(e.Message, Does.Contain("column 'x': '4.x5' is not a number"));
        // Every row's label missing: all skipped, nothing to train on.
        File.WriteAllText(_csv, "id,x,label\n1,2.5,\n2,3.5,NA\n3,4.5,?\n");
        e = Assert.Throws<DatasetException>(() => Prepare(Spec with { OnError = "skip" }))!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.NoSamples));
        Assert.That(e.Message, Does.Contain("0 usable row(s)"));
        Assert.That(Directory.Exists(Path.Combine(_dir, "ds")), Is.False);
    }

    [Test]
    public void A_missing_label_column_and_a_table_with_one_class_are_refused()
    {
        File.WriteAllText(_csv, "id,x,y\n1,2,a\n2,3,b\n3,4,a\n");
        var e = Assert.Throws<DatasetException>(() => Prepare())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.NoSuchColumn));
        Assert.That(e.Message, Does.Contain("label column 'label' does not exist").And.Contain("id, x, y"));
        File.WriteAllText(_csv, "id,x,label\n1,2,a\n2,3,a\n3,4,a\n");
        e = Assert.Throws<DatasetException>(() => Prepare())!;
        Assert.That(e.Message, Does.Contain("1 distinct value"));
    }

    [Test]
    public void Quoted_fields_keep_their_commas_quotes_and_line_breaks()
    {
        var t = CsvTable.Parse("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\n", "q.csv");
        Assert.That(t.Rows[0], Is.EqualTo(new[] { "x, y", "say \"hi\"" }));
        Assert.That(t.Rows[1], Is.EqualTo(new[] { "two\nlines", "z" }));
        Assert.That(t.Lines, Is.EqualTo(new[] { 2, 3 }));
    }
}
