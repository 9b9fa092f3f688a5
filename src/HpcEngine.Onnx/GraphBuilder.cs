using Google.Protobuf;
using HpcEngine.Training;
using Onnx;

namespace HpcEngine.Onnx;

/// <summary>Builds an ONNX graph: inputs and outputs with a symbolic batch dimension, float initializers from
/// tensors, and nodes with their attributes.</summary>
internal sealed class GraphBuilder(string name)
{
    public GraphProto Graph { get; } = new() { Name = name };
    private int _nodes;

    private static TypeProto FloatTensor(IEnumerable<long> dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (var d in dims)
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape },
        };
    }

    public void Input(string name, IReadOnlyList<int> sample) =>
        Graph.Input.Add(new ValueInfoProto { Name = name, Type = FloatTensor(sample.Select(d => (long)d)) });

    public void Output(string from, string name, int classes)
    {
        Graph.Node.Add(
            new NodeProto
            {
                OpType = "Identity",
                Name = "output",
                Input = { from },
                Output = { name },
            }
        );
        Graph.Output.Add(new ValueInfoProto { Name = name, Type = FloatTensor([classes]) });
    }

    /// <summary>A float32 initializer holding <paramref name="t"/>'s values.</summary>
    public string Weight(string name, Tensor t)
    {
        using var cpu = t.To(Device.Cpu);
        using var f = cpu.To(DType.Float32);
        var values = f.ToArray<float>();
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var init = new TensorProto
        {
            Name = name,
            DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(bytes),
        };
        init.Dims.AddRange(t.ShapeArray.Select(d => (long)d));
        Graph.Initializer.Add(init);
        return name;
    }

    private string Constant(string name, float[] values, long[] dims)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var init = new TensorProto
        {
            Name = name,
            DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(bytes),
        };
        init.Dims.AddRange(dims);
        Graph.Initializer.Add(init);
        return name;
    }

    /// <summary>x · 1/(255 σ_c) + (−μ_c/σ_c) per channel, in float as the training loader computes it.</summary>
    public string Normalization(string x, ModelInput input)
    {
        var (scale, shift) = (input.Normalization ?? ModelInput.FashionMnistNormalization).Affine();
        int c = scale.Length;
        var scaled = Node("Mul", [x, Constant("normalize.scale", scale, [c, 1, 1])], "normalize.mul");
        return Node("Add", [scaled, Constant("normalize.shift", shift, [c, 1, 1])], "normalize.add");
    }

    public string Node(string op, string[] inputs, string name, params (string Key, object Value)[] attributes)
    {
        string output = $"{name}.{op.ToLowerInvariant()}.{_nodes++}";
        var node = new NodeProto { OpType = op, Name = $"{name}.{op}" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        foreach (var (key, value) in attributes)
            node.Attribute.Add(
                value switch
                {
                    long i => new AttributeProto
                    {
                        Name = key,
                        Type = AttributeProto.Types.AttributeType.Int,
                        I = i,
                    },
                    float f => new AttributeProto
                    {
                        Name = key,
                        Type = AttributeProto.Types.AttributeType.Float,
                        F = f,
                    },
                    long[] ints => Ints(key, ints),
                    _ => throw new InvalidOperationException($"internal: attribute {key} of type {value.GetType()}"),
                }
            );
        Graph.Node.Add(node);
        return output;
    }

    private static AttributeProto Ints(string key, long[] values)
    {
        var a = new AttributeProto { Name = key, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
