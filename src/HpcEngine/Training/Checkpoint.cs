using System.Globalization;
using System.Text.Json;
using HpcEngine.IO;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Training;

/// <summary>Where a run stands: enough, with the model and optimizer state, to resume it exactly.
/// <paramref name="Fingerprint"/>: the run's <see cref="RunFingerprint"/> as JSON (null in checkpoints written before
/// fingerprints existed).</summary>
public sealed record TrainingState(
    int Epoch,
    int BatchInEpoch,
    long Step,
    ulong RngSeed,
    ulong RngOffset,
    string ConfigJson,
    string? Fingerprint = null
);

/// <summary>A checkpoint directory. Each save writes <c>model-STEP.safetensors</c> (the model's state dict under
/// PyTorch names: loadable by PyTorch's safetensors) and <c>trainer-STEP.safetensors</c> (optimizer state tensors,
/// with the optimizer scalars, RNG state, position and run config in its metadata), each atomically, and only then
/// atomically replaces <c>checkpoint.json</c>, which names the pair. A crash at any point leaves checkpoint.json
/// naming the previous complete pair. Older pairs are deleted after the switch (the last two are kept).</summary>
public static class Checkpoint
{
    /// <summary>The file that names a directory's current checkpoint pair (replaced atomically).</summary>
    public const string PointerFile = "checkpoint.json";
    private const string Format = "hpcengine-checkpoint-1";

    /// <summary>True when <paramref name="dir"/> holds a checkpoint.</summary>
    public static bool Exists(string dir) => File.Exists(Path.Combine(dir, PointerFile));

    /// <summary>Saves model, optimizer and state; returns the path of the model file. The model file's metadata records
    /// <paramref name="input"/> (default: Fashion-MNIST's [1, 28, 28] pixels, 10 classes).</summary>
    public static string Save(
        string dir,
        Module model,
        Optimizer optimizer,
        TrainingState state,
        ModelInput? input = null
    )
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        Directory.CreateDirectory(dir);
        RemoveLeftovers(dir, ".model-*.tmp", ".trainer-*.tmp", PointerFile + ".*.tmp");
        string tag = state.Step.ToString("D9", CultureInfo.InvariantCulture);
        string modelFile = $"model-{tag}.safetensors",
            trainerFile = $"trainer-{tag}.safetensors";
        // What the inputs are (shape, classes, normalisation, preprocessing) travels with the weights: whoever runs
        // them elsewhere needs it.
        input ??= new ModelInput { ClassNames = Data.FashionMnist.ClassNames };
        var modelMeta = new Dictionary<string, string> { ["format"] = "pt" };
        input.WriteTo(modelMeta);
        Safetensors.Save(
            Path.Combine(dir, modelFile),
            model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value),
            modelMeta
        );
        var (tensors, scalars) = optimizer.StateDict();
        try
        {
            var meta = scalars.ToDictionary(kv => "optim." + kv.Key, kv => kv.Value);
            meta["format"] = Format;
            meta["epoch"] = state.Epoch.ToString(CultureInfo.InvariantCulture);
            meta["batch_in_epoch"] = state.BatchInEpoch.ToString(CultureInfo.InvariantCulture);
            meta["step"] = state.Step.ToString(CultureInfo.InvariantCulture);
            meta["rng.seed"] = state.RngSeed.ToString(CultureInfo.InvariantCulture);
            meta["rng.offset"] = state.RngOffset.ToString(CultureInfo.InvariantCulture);
            meta["config"] = state.ConfigJson;
            if (state.Fingerprint != null)
                meta["fingerprint"] = state.Fingerprint;
            Safetensors.Save(
                Path.Combine(dir, trainerFile),
                tensors.ToDictionary(kv => "optim." + kv.Key, kv => kv.Value),
                meta
            );
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }
        var pointer = JsonSerializer.Serialize(
            new Dictionary<string, object>
            {
                ["format"] = Format,
                ["step"] = state.Step,
                ["epoch"] = state.Epoch,
                ["model"] = modelFile,
                ["trainer"] = trainerFile,
                ["input_shape"] = input.SampleShape,
                ["classes"] = input.Classes,
                ["input_normalization"] = input.Normalization is { } norm
                    ? new Dictionary<string, object> { ["mean"] = norm.Mean, ["std"] = norm.Std }
                    : "none (features are stored preprocessed)",
            }
        );
        WriteAtomically(Path.Combine(dir, PointerFile), pointer);
        Prune(dir, keep: 2);
        return Path.Combine(dir, modelFile);
    }

    /// <summary>Metadata keys of the model file: the per-pixel mean and standard deviation the model's inputs were
    /// normalised with (x/255 − mean) / std.</summary>
    public const string InputMeanKey = "hpcengine.input_mean",
        InputStdKey = "hpcengine.input_std";

    /// <summary>Where the checkpoint in <paramref name="dir"/> stands, read from its metadata alone (nothing is loaded
    /// into a model): what a resume checks before it touches the model. Null when there is no checkpoint.</summary>
    public static TrainingState? ReadState(string dir)
    {
        var (_, trainerPath) = Locate(dir);
        if (trainerPath == null)
            return null;
        using var tf = Safetensors.Open(trainerPath);
        return StateOf(trainerPath, tf.Metadata);
    }

    private static TrainingState StateOf(string path, IReadOnlyDictionary<string, string> meta)
    {
        if (!meta.TryGetValue("format", out var fmt) || fmt != Format)
            throw new InvalidDataException($"{path}: not an HpcEngine trainer checkpoint (format '{fmt}')");
        try
        {
            return new TrainingState(
                int.Parse(meta["epoch"], CultureInfo.InvariantCulture),
                int.Parse(meta["batch_in_epoch"], CultureInfo.InvariantCulture),
                long.Parse(meta["step"], CultureInfo.InvariantCulture),
                ulong.Parse(meta["rng.seed"], CultureInfo.InvariantCulture),
                ulong.Parse(meta["rng.offset"], CultureInfo.InvariantCulture),
                meta["config"],
                meta.GetValueOrDefault("fingerprint")
            );
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"{path}: damaged trainer metadata ({e.Message})", e);
        }
    }

    /// <summary>Loads the checkpoint into <paramref name="model"/> and <paramref name="optimizer"/>; null when the
    /// directory holds none. A damaged checkpoint is an error naming the file and what is wrong.</summary>
    public static TrainingState? Load(string dir, Module model, Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        var (modelPath, trainerPath) = Locate(dir);
        if (modelPath == null)
            return null;
        using (var f = Safetensors.Open(modelPath))
        {
            var state = f.Names.ToDictionary(n => n, n => f.Read(n).DetachFromScope(), StringComparer.Ordinal);
            try
            {
                model.LoadStateDict(state);
            }
            finally
            {
                foreach (var t in state.Values)
                    t.Dispose();
            }
        }
        using var tf = Safetensors.Open(trainerPath!);
        var meta = tf.Metadata;
        var st = StateOf(trainerPath!, meta);
        var tensors = tf.Names.ToDictionary(
            n => n["optim.".Length..],
            n => tf.Read(n).DetachFromScope(),
            StringComparer.Ordinal
        );
        try
        {
            optimizer.LoadStateDict(
                tensors,
                meta.Where(kv => kv.Key.StartsWith("optim.", StringComparison.Ordinal))
                    .ToDictionary(kv => kv.Key["optim.".Length..], kv => kv.Value)
            );
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }
        return st;
    }

    /// <summary>Writes one rank's own strategy state (<c>rank{R}-STEP.safetensors</c>, atomically). Every rank writes
    /// its file before rank 0 switches checkpoint.json to the step (the trainer puts a barrier between).</summary>
    public static void SaveRankState(
        string dir,
        int rank,
        long step,
        IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string> scalars
    )
    {
        ArgumentNullException.ThrowIfNull(scalars);
        Directory.CreateDirectory(dir);
        RemoveLeftovers(dir, $".rank{rank.ToString(CultureInfo.InvariantCulture)}-*.tmp");
        var meta = scalars.ToDictionary(kv => "state." + kv.Key, kv => kv.Value);
        meta["format"] = Format;
        meta["rank"] = rank.ToString(CultureInfo.InvariantCulture);
        Safetensors.Save(Path.Combine(dir, RankFile(rank, step)), tensors, meta);
    }

    /// <summary>Reads what <see cref="SaveRankState"/> wrote for <paramref name="rank"/> at the checkpoint's step; a
    /// missing file is an error saying why it may be missing.</summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) LoadRankState(
        string dir,
        int rank,
        long step
    )
    {
        string path = Path.Combine(dir, RankFile(rank, step));
        if (!File.Exists(path))
            throw new InvalidDataException(
                $"{path} is missing: this checkpoint was written by a run with fewer ranks or another strategy; resume "
                    + $"with the same strategy, codec and number of workers"
            );
        using var f = Safetensors.Open(path);
        if (!f.Metadata.TryGetValue("rank", out var r) || r != rank.ToString(CultureInfo.InvariantCulture))
            throw new InvalidDataException($"{path}: not rank {rank}'s state");
        var tensors = f.Names.ToDictionary(n => n, n => f.Read(n).DetachFromScope(), StringComparer.Ordinal);
        var scalars = f
            .Metadata.Where(kv => kv.Key.StartsWith("state.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["state.".Length..], kv => kv.Value);
        return (tensors, scalars);
    }

    private static string RankFile(int rank, long step) =>
        $"rank{rank.ToString(CultureInfo.InvariantCulture)}-{step.ToString("D9", CultureInfo.InvariantCulture)}.safetensors";

    /// <summary>The model and trainer files checkpoint.json names (nulls when there is no checkpoint).</summary>
    public static (string? Model, string? Trainer) Locate(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        string pointer = Path.Combine(dir, PointerFile);
        if (!File.Exists(pointer))
            return (null, null);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(pointer));
            string m = Path.Combine(dir, InDirectory(pointer, doc.RootElement.GetProperty("model").GetString()));
            string t = Path.Combine(dir, InDirectory(pointer, doc.RootElement.GetProperty("trainer").GetString()));
            if (!File.Exists(m) || !File.Exists(t))
                throw new InvalidDataException($"{pointer} names {m} and {t}, but one of them is missing");
            return (m, t);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{pointer} is damaged: {e.Message}", e);
        }
    }

    /// <summary>A file name checkpoint.json may name: a plain name inside the checkpoint's directory, never a path
    /// that leads out of it (a hostile or hand-edited pointer must not make a resume read arbitrary files).</summary>
    private static string InDirectory(string pointer, string? name)
    {
        if (
            string.IsNullOrEmpty(name)
            || name != Path.GetFileName(name)
            || name is "." or ".."
            || name.Contains('\\', StringComparison.Ordinal)
            || Path.IsPathRooted(name)
        )
            throw new InvalidDataException(
                $"{pointer} names '{name}', which is not a file of the checkpoint directory"
            );
        return name;
    }

    /// <summary>Deletes the temporary files an interrupted save left behind (the atomic writes' <c>*.tmp</c>). Each
    /// writer cleans only its own kind — rank 0 the model, trainer and pointer files, rank R its rank files — so a
    /// rank that runs ahead (local SGD between exchanges) can never lose a file another rank is writing.</summary>
    private static void RemoveLeftovers(string dir, params string[] patterns)
    {
        foreach (var tmp in patterns.SelectMany(p => Directory.EnumerateFiles(dir, p)))
            try
            {
                File.Delete(tmp);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
    }

    private static void WriteAtomically(string path, string text)
    {
        string tmp = path + $".{Environment.ProcessId}.tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static void Prune(string dir, int keep)
    {
        var (current, _) = Locate(dir);
        var steps = Directory
            .GetFiles(dir, "model-*.safetensors")
            .Select(Path.GetFileName)
            .Order(StringComparer.Ordinal)
            .ToList();
        foreach (var old in steps.Take(Math.Max(0, steps.Count - keep)))
        {
            if (Path.Combine(dir, old!) == current)
                continue;
            File.Delete(Path.Combine(dir, old!));
            File.Delete(Path.Combine(dir, "trainer-" + old!["model-".Length..]));
            foreach (var rankFile in Directory.GetFiles(dir, "rank*-" + old!["model-".Length..]))
                File.Delete(rankFile);
        }
    }
}
