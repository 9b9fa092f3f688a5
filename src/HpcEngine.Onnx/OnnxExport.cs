using System.Globalization;
using Google.Protobuf;
using HpcEngine.NN;
using HpcEngine.Training;
using Onnx;

namespace HpcEngine.Onnx;

/// <summary>A model (or part of one) the exporter cannot express: names the layer and what to do.</summary>
public sealed class OnnxExportException(string message) : Exception(message);

/// <summary>Exports a model built from Sequential, Flatten, Linear, Conv2d, BatchNorm2d/1d, MaxPool2d, ReLU,
/// Tanh, Sigmoid and Dropout (the layers of mlp, mlp-wide and cnn) to ONNX, opset 17, IR version 8: one input
/// <c>input</c> and one output <c>logits</c>, both with a dynamic batch dimension <c>batch</c>; weights as
/// initializers; BatchNorm with its running statistics (inference form). With <see
/// cref="OnnxExportOptions.IncludeNormalization"/> (pixel models) the graph takes raw pixel values 0..255 as float and
/// normalises them itself (Mul, Add per channel: the training loader's arithmetic), so a runtime needs no
/// preprocessing but decoding. The model's class names, input description and preprocessing are in metadata_props.
/// The protobuf is written with Google.Protobuf from onnx.proto.</summary>
public static class OnnxExport
{
    /// <summary>The opset the nodes follow.</summary>
    public const int Opset = 17;

    /// <summary>Exports <paramref name="model"/>, whose inputs <paramref name="input"/> describes, to
    /// <paramref name="path"/>.</summary>
    public static void Save(Module model, ModelInput input, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var proto = Build(model, input, options ?? new OnnxExportOptions());
        string temp = path + ".partial";
        using (var f = File.Create(temp))
            proto.WriteTo(f);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The serialized model (what <see cref="Save"/> writes).</summary>
    public static byte[] ToBytes(Module model, ModelInput input, OnnxExportOptions? options = null) =>
        Build(model, input, options ?? new OnnxExportOptions()).ToByteArray();

    internal static ModelProto Build(Module model, ModelInput input, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(input);
        var g = new GraphBuilder(options.GraphName);
        string x = "input";
        bool normalize = options.IncludeNormalization && input.IsPixels;
        g.Input(x, input.SampleShape);
        if (normalize)
            x = g.Normalization(x, input);
        var layers = model is Sequential seq ? seq.Layers : [model];
        for (int i = 0; i < layers.Count; i++)
            x = Layer(g, layers[i], x, $"{i}");
        g.Output(x, "logits", input.Classes);
        var m = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "hpcengine",
            ProducerVersion = typeof(Tensor).Assembly.GetName().Version?.ToString() ?? "",
            Graph = g.Graph,
            DocString =
                normalize ? "input: pixel values 0..255 as float, [batch, C, H, W]; normalised inside the graph"
                : input.IsPixels ? "input: normalised pixels (x/255 - mean) / std, [batch, C, H, W]"
                : "input: encoded features [batch, F]",
        };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        void Meta(string key, string? value)
        {
            if (value != null)
                m.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }
        Meta(
            "hpcengine.classes",
            input.ClassNames != null ? System.Text.Json.JsonSerializer.Serialize(input.ClassNames) : null
        );
        Meta("hpcengine.input_kind", input.IsPixels ? (normalize ? "pixels 0..255" : "normalised pixels") : "features");
        Meta("hpcengine.preprocessing", input.Preprocessing);
        if (input.Normalization is { } n)
            Meta(
                "hpcengine.input_normalization",
                System.Text.Json.JsonSerializer.Serialize(new { mean = n.Mean, std = n.Std })
            );
        return m;
    }

    private static string Layer(GraphBuilder g, Module layer, string x, string name) =>
        layer switch
        {
            Sequential inner => inner
                .Layers.Select((l, i) => (l, i))
                .Aggregate(x, (acc, p) => Layer(g, p.l, acc, $"{name}.{p.i}")),
            Flatten f when f.StartDim == 1 && f.EndDim == -1 => g.Node("Flatten", [x], name, ("axis", 1L)),
            Flatten => throw new OnnxExportException($"layer {name} (Flatten): only start_dim 1, end_dim -1 exports"),
            Linear l => g.Node(
                "Gemm",
                [x, g.Weight($"{name}.weight", l.Weight), .. Optional(g, $"{name}.bias", l.Bias)],
                name,
                ("transB", 1L)
            ),
            Conv2d c => g.Node(
                "Conv",
                [x, g.Weight($"{name}.weight", c.Weight), .. Optional(g, $"{name}.bias", c.Bias)],
                name,
                ("kernel_shape", new long[] { c.Weight.Shape[2], c.Weight.Shape[3] }),
                ("strides", new long[] { c.Stride, c.Stride }),
                ("pads", new long[] { c.Padding, c.Padding, c.Padding, c.Padding }),
                ("dilations", new long[] { c.Dilation, c.Dilation }),
                ("group", (long)c.Groups)
            ),
            BatchNorm b => g.Node(
                "BatchNormalization",
                [
                    x,
                    g.Weight($"{name}.weight", b.Weight),
                    g.Weight($"{name}.bias", b.Bias),
                    g.Weight($"{name}.running_mean", b.RunningMean),
                    g.Weight($"{name}.running_var", b.RunningVar),
                ],
                name,
                ("epsilon", (float)b.Eps)
            ),
            MaxPool2d p => g.Node(
                "MaxPool",
                [x],
                name,
                ("kernel_shape", new long[] { p.KernelSize, p.KernelSize }),
                ("strides", new long[] { p.Stride, p.Stride }),
                ("pads", new long[] { p.Padding, p.Padding, p.Padding, p.Padding })
            ),
            ReLU => g.Node("Relu", [x], name),
            Tanh => g.Node("Tanh", [x], name),
            Sigmoid => g.Node("Sigmoid", [x], name),
            Dropout => x, // inference: the identity
            _ => throw new OnnxExportException(
                $"layer {name} ({layer.GetType().Name}) has no ONNX export: the exporter takes Sequential, Flatten, Linear, "
                    + "Conv2d, BatchNorm, MaxPool2d, ReLU, Tanh, Sigmoid and Dropout"
            ),
        };

    private static string[] Optional(GraphBuilder g, string name, Tensor? t) => t == null ? [] : [g.Weight(name, t)];

    internal static string Invariant(long v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>How <see cref="OnnxExport"/> exports.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Pixel models: the graph takes pixels 0..255 and normalises them (default); false: it takes the
    /// normalised input, as the engine's model does.</summary>
    public bool IncludeNormalization { get; init; } = true;

    /// <summary>The graph's name.</summary>
    public string GraphName { get; init; } = "hpcengine";
}
