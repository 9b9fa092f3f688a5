using System.Buffers.Binary;
using System.Text;
using HpcEngine.IO;

namespace HpcEngine.Tests.IO;

[TestFixture]
public class SafetensorsTests
{
    private string _dir = null!;

    [SetUp]
    public void MakeDir() => _dir = Directory.CreateTempSubdirectory("hpc-st-").FullName;

    [TearDown]
    public void RemoveDir() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Round_trip_keeps_names_dtypes_shapes_values_and_metadata()
    {
        string path = Path.Combine(_dir, "a.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["w"] = Tensor.Randn([3, 5], DType.Float32, new Generator(1)),
            ["d"] = Tensor.FromArray([1.5, -2.25]),
            ["i"] = Tensor.FromArray([7L, -8L, 9L], 3, 1),
            ["h"] = Tensor.FromArray([1f, 2f, 3f]).To(DType.BFloat16),
            ["f16"] = Tensor.FromArray([0.5f, 4f]).To(DType.Float16),
            ["b"] = Tensor.FromArray([true, false]),
            ["empty"] = Tensor.Zeros([0, 4]),
            ["scalar"] = Tensor.Scalar(3.0),
        };
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var f = Safetensors.Open(path);
        Assert.That(f.Metadata["format"], Is.EqualTo("pt"));
        Assert.That(f.Names, Is.EquivalentTo(tensors.Keys));
        foreach (var (name, t) in tensors)
        {
            using var r = f.Read(name);
            Assert.That(r.DType, Is.EqualTo(t.DType), name);
            Assert.That(r.ShapeArray, Is.EqualTo(t.ShapeArray), name);
            Assert.That(r.ToBytes(), Is.EqualTo(t.ToBytes()), name);
        }
        // The data buffer starts 8-byte aligned, as the reference writer pads.
        var bytes = File.ReadAllBytes(path);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8, Is.Zero);
    }

    [Test]
    public void Reads_the_file_pytorch_wrote()
    {
        using var f = Safetensors.Open(
            Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "ops.safetensors")
        );
        Assert.That(f.Metadata["producer"], Does.StartWith("torch"));
        using var t = f.Read("matmul_2d.in0");
        Assert.That(t.ShapeArray, Is.EqualTo(new[] { 5, 7 }));
        Assert.That(t.DType, Is.EqualTo(DType.Float64));
    }

    [Test]
    public void Missing_tensor_names_what_the_file_has()
    {
        string path = Path.Combine(_dir, "m.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = Tensor.Zeros([1]) });
        using var f = Safetensors.Open(path);
        var ex = Assert.Throws<SafetensorsException>(() => f.Read("y"));
        Assert.That(ex!.Check, Is.EqualTo(SafetensorsCheck.MissingTensor));
        Assert.That(ex.Message, Does.Contain("'y'").And.Contain("x"));
    }

    private string Craft(byte[] header, int dataBytes, ulong? lengthOverride = null, byte[]? raw = null)
    {
        string path = Path.Combine(_dir, $"bad-{Guid.NewGuid():N}.safetensors");
        if (raw != null)
        {
            File.WriteAllBytes(path, raw);
            return path;
        }
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, lengthOverride ?? (ulong)header.Length);
        fs.Write(len);
        fs.Write(header);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    private static byte[] J(string json) => Encoding.UTF8.GetBytes(json);

    public static IEnumerable<TestCaseData> BadFiles()
    {
        const string ok = "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
        yield return new TestCaseData(null, 0, null, new byte[] { 1, 2, 3 }, SafetensorsCheck.HeaderTooSmall).SetName(
            "header too small"
        );
        yield return new TestCaseData(J("{}"), 0, 100_000_001UL, null, SafetensorsCheck.HeaderTooLarge).SetName(
            "header length over 100 MB"
        );
        yield return new TestCaseData(J("{}"), 0, 1UL << 63, null, SafetensorsCheck.HeaderTooLarge).SetName(
            "2^63 header length"
        );
        yield return new TestCaseData(J("{" + ok + "}"), 8, 5000UL, null, SafetensorsCheck.InvalidHeaderLength).SetName(
            "header length past end of file"
        );
        yield return new TestCaseData(
            new byte[] { (byte)'{', 0xFF, 0xFE, (byte)'}' },
            0,
            null,
            null,
            SafetensorsCheck.InvalidUtf8
        ).SetName("invalid utf-8");
        yield return new TestCaseData(J("[" + ok + "]"), 8, null, null, SafetensorsCheck.InvalidHeaderStart).SetName(
            "header not starting with brace"
        );
        yield return new TestCaseData(J("{" + ok + ","), 8, null, null, SafetensorsCheck.InvalidJson).SetName(
            "truncated json"
        );
        yield return new TestCaseData(
            J("{" + ok + "," + ok + "}"),
            8,
            null,
            null,
            SafetensorsCheck.DuplicateKey
        ).SetName("duplicate key");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}"),
            8,
            null,
            null,
            SafetensorsCheck.UnknownDType
        ).SetName("unknown dtype");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}"),
            8,
            null,
            null,
            SafetensorsCheck.InvalidShape
        ).SetName("negative dim");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}"),
            8,
            null,
            null,
            SafetensorsCheck.InvalidEntry
        ).SetName("offsets not a pair");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}"),
            8,
            null,
            null,
            SafetensorsCheck.SizeMismatch
        ).SetName("shape and offsets disagree");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}"),
            12,
            null,
            null,
            SafetensorsCheck.InvalidOffsets
        ).SetName("gap before first tensor");
        yield return new TestCaseData(
            J(
                "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}"
            ),
            12,
            null,
            null,
            SafetensorsCheck.InvalidOffsets
        ).SetName("overlapping tensors");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],\"data_offsets\":[0,8]}}"),
            8,
            null,
            null,
            SafetensorsCheck.Overflow
        ).SetName("element count overflow");
        yield return new TestCaseData(J("{" + ok + "}"), 16, null, null, SafetensorsCheck.IncompleteBuffer).SetName(
            "data buffer longer than tensors"
        );
        yield return new TestCaseData(J("{" + ok + "}"), 4, null, null, SafetensorsCheck.IncompleteBuffer).SetName(
            "truncated data"
        );
        yield return new TestCaseData(
            J("{\"__metadata__\":{\"a\":1}," + ok + "}"),
            8,
            null,
            null,
            SafetensorsCheck.InvalidMetadata
        ).SetName("metadata value not a string");
        yield return new TestCaseData(
            J("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}"),
            8,
            null,
            null,
            SafetensorsCheck.InvalidOffsets
        ).SetName("end before begin");
    }

    [TestCaseSource(nameof(BadFiles))]
    public void Bad_file_fails_the_named_check(
        byte[]? header,
        int dataBytes,
        ulong? lengthOverride,
        byte[]? raw,
        SafetensorsCheck check
    )
    {
        string path = Craft(header ?? [], dataBytes, lengthOverride, raw);
        var ex = Assert.Throws<SafetensorsException>(() => Safetensors.Open(path).Dispose());
        Assert.That(ex!.Check, Is.EqualTo(check), ex.Message);
        Assert.That(ex.Message, Does.Contain(path));
    }

    [Test]
    public void Save_is_atomic_and_leaves_no_temp_file()
    {
        string path = Path.Combine(_dir, "w.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["a"] = Tensor.Ones([4]) });
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["a"] = Tensor.Zeros([4]) });
        Assert.That(Directory.GetFiles(_dir), Has.Length.EqualTo(1));
        using var f = Safetensors.Open(path);
        Assert.That(f.Read("a").ToArray<float>(), Is.All.Zero);
    }
}
