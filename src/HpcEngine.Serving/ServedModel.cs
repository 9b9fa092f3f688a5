using HpcEngine.Autograd;
using HpcEngine.Datasets.Prepare;
using HpcEngine.NN;
using HpcEngine.Training;

namespace HpcEngine.Serving;

/// <summary>A model loaded from a checkpoint for serving: the module in eval mode, what its inputs are, its name and
/// version (the checkpoint's step), and the raw-input path (the training-time preprocessing). Only the batcher's
/// thread runs <see cref="Forward"/>; everything else here is immutable.</summary>
public sealed class ServedModel : IDisposable
{
    /// <summary>The model's name in URLs (the architecture, unless the server was given another).</summary>
    public string Name { get; }

    /// <summary>The version: the checkpoint's optimizer step.</summary>
    public string Version { get; }

    /// <summary>The architecture (mlp, mlp-wide, cnn).</summary>
    public string Architecture { get; }

    /// <summary>What the inputs are.</summary>
    public ModelInput Input { get; }

    /// <summary>The model file it came from.</summary>
    public string WeightsPath { get; }

    /// <summary>Raw images or CSV rows into samples (null: the model records no usable preprocessing).</summary>
    public RawInputs? Raw { get; }

    /// <summary>Class names by label.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Features per sample (the product of the sample shape).</summary>
    public int SampleSize { get; }

    private readonly Module _module;

    private ServedModel(
        string name,
        string version,
        string architecture,
        ModelInput input,
        string weights,
        Module module
    )
    {
        Name = name;
        Version = version;
        Architecture = architecture;
        Input = input;
        WeightsPath = weights;
        _module = module;
        SampleSize = input.SampleShape.Aggregate(1, (a, b) => a * b);
        ClassNames = input.ClassNames
            ?? Enumerable
                .Range(0, input.Classes)
                .Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .ToArray();
        try
        {
            Raw = RawInputs.For(input);
        }
        catch (Data.Sharded.DatasetException)
        {
            Raw = null; // a feature model without recorded preprocessing: only tensors can be sent
        }
    }

    /// <summary>Loads the current checkpoint of <paramref name="checkpointDir"/>; a directory without one is a
    /// <see cref="FileNotFoundException"/> that says so.</summary>
    public static ServedModel Load(string checkpointDir, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(checkpointDir);
        if (!Directory.Exists(checkpointDir))
            throw new DirectoryNotFoundException($"checkpoint directory '{checkpointDir}' does not exist");
        var saved = SavedModel.Load(checkpointDir);
        saved.Module.Eval();
        return new ServedModel(
            name ?? saved.Architecture,
            saved.Step ?? "0",
            saved.Architecture,
            saved.Input,
            saved.WeightsPath,
            saved.Module
        );
    }

    /// <summary>Logits [count, classes] (row-major) of <paramref name="count"/> samples laid out row-major in
    /// <paramref name="inputs"/> as the model takes them (normalised pixels, or encoded features).</summary>
    public float[] Forward(float[] inputs, int count)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        int[] shape = [count, .. Input.SampleShape];
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        using var x = Tensor.FromArray(inputs, shape);
        using var logits = _module.Forward(x);
        return logits.ToArray<float>();
    }

    /// <summary>Normalises pixels [C, H, W] as the training loader does (the same float arithmetic: x · 1/(255 σ) −
    /// μ/σ per channel), so served and trained inputs agree bit for bit.</summary>
    public void Normalise(ReadOnlySpan<byte> pixels, Span<float> into)
    {
        var (scale, shift) = (Input.Normalization ?? ModelInput.FashionMnistNormalization).Affine();
        int plane = pixels.Length / scale.Length;
        for (int c = 0; c < scale.Length; c++)
        for (int i = c * plane; i < (c + 1) * plane; i++)
            into[i] = pixels[i] * scale[c] + shift[c];
    }

    /// <inheritdoc/>
    public void Dispose() => _module.Dispose();
}
