using HpcEngine.Data;

namespace HpcEngine.Datasets;

/// <summary>Where Fashion-MNIST comes from, in this order: an explicit directory (<c>--data DIR</c>), the
/// HPCENGINE_DATA environment variable, Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), and
/// last the subset embedded in this assembly (10,000 training and 2,000 test images, so the main job runs on a
/// fresh machine). The description says which one was used.</summary>
public static class DataSources
{
    /// <summary>The environment variable naming a Fashion-MNIST directory.</summary>
    public const string EnvironmentVariable = "HPCENGINE_DATA";

    /// <summary>Loads Fashion-MNIST from the first source found, checks it, and lets it go; returns the source's name.
    /// For tools that start many runs: unusable data fails once, up front.</summary>
    public static string Check(string? dataDir = null)
    {
        var (train, test, source) = LoadFashionMnist(dataDir);
        train.Dispose();
        test.Dispose();
        return source;
    }

    /// <summary>The training and test data of a run: the prepared dataset in <paramref name="datasetDir"/> (its
    /// shards memory-mapped and verified) when given, else Fashion-MNIST from the first source found.</summary>
    public static (Dataset Train, Dataset Test, string Source) LoadTraining(string? dataDir, string? datasetDir)
    {
        if (datasetDir == null)
            return LoadFashionMnist(dataDir);
        if (dataDir != null)
            throw new ArgumentException(
                "--data (Fashion-MNIST IDX files) and --dataset (a prepared dataset) name two sources: give one"
            );
        var train = HpcEngine.Data.Sharded.ShardedDataset.Open(datasetDir, "train");
        try
        {
            var test = HpcEngine.Data.Sharded.ShardedDataset.Open(datasetDir, "test");
            return (train, test, $"{datasetDir} (prepared {train.Manifest.Source.Kind} dataset)");
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    /// <summary>Loads Fashion-MNIST from the first source found.</summary>
    public static (ImageDataset Train, ImageDataset Test, string Source) LoadFashionMnist(string? dataDir = null)
    {
        if (dataDir != null)
        {
            if (!Directory.Exists(dataDir))
                throw new DirectoryNotFoundException($"--data: directory '{dataDir}' does not exist");
            var (tr, te) = FashionMnist.Load(dataDir);
            return (tr, te, $"{dataDir} (--data)");
        }
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            if (!Directory.Exists(env))
                throw new DirectoryNotFoundException($"{EnvironmentVariable}: directory '{env}' does not exist");
            var (tr, te) = FashionMnist.Load(env);
            return (tr, te, $"{env} ({EnvironmentVariable})");
        }
        if (FashionMnist.IsPresentIn(FashionMnist.DebianDirectory))
        {
            var (tr, te) = FashionMnist.Load(FashionMnist.DebianDirectory);
            return (tr, te, $"{FashionMnist.DebianDirectory} (Debian dataset-fashion-mnist)");
        }
        var (etr, ete) = LoadEmbedded();
        return (etr, ete, "embedded subset (10,000 train / 2,000 test images)");
    }

    /// <summary>The embedded subset.</summary>
    public static (ImageDataset Train, ImageDataset Test) LoadEmbedded()
    {
        var asm = typeof(DataSources).Assembly;
        return FashionMnist.Load(name =>
        {
            string res = "fashion-mnist/" + name;
            var s = asm.GetManifestResourceStream(res)
                ?? throw new DataFormatException(
                    res,
                    IdxCheck.Missing,
                    "embedded resource not found in HpcEngine.Datasets"
                );
            return (s, "embedded:" + res);
        });
    }
}
