using System.Buffers.Binary;
using HpcEngine.Data;
using HpcEngine.Datasets;

namespace HpcEngine.Tests.Data;

[TestFixture]
public class IdxTests
{
    private string _dir = null!;

    [SetUp]
    public void MakeDir() => _dir = TestSupport.TempDir("hpc-idx-");

    [TearDown]
    public void RemoveDir() => Directory.Delete(_dir, true);

    private static byte[] Header(byte type, params uint[] dims)
    {
        var b = new byte[4 + 4 * dims.Length];
        b[2] = type;
        b[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++)
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
        return b;
    }

    public static IEnumerable<TestCaseData> BadFiles()
    {
        yield return new TestCaseData(new byte[] { 0, 0 }, IdxCheck.HeaderTruncated).SetName("shorter than the magic");
        yield return new TestCaseData(new byte[] { 1, 0, 8, 1, 0, 0, 0, 1, 7 }, IdxCheck.BadMagic).SetName(
            "magic not 00 00"
        );
        yield return new TestCaseData(
            Header(0x07, 1).Concat(new byte[] { 1 }).ToArray(),
            IdxCheck.UnknownTypeCode
        ).SetName("unknown type code");
        yield return new TestCaseData(new byte[] { 0, 0, 8, 0 }, IdxCheck.BadRank).SetName("rank zero");
        yield return new TestCaseData(new byte[] { 0, 0, 8, 9 }, IdxCheck.BadRank).SetName("rank nine");
        yield return new TestCaseData(Header(0x08, 3, 2)[..9], IdxCheck.HeaderTruncated).SetName("dims truncated");
        yield return new TestCaseData(Header(0x08, 3, 0), IdxCheck.ZeroDimension).SetName("zero dimension");
        yield return new TestCaseData(Header(0x08, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), IdxCheck.TooLarge).SetName(
            "dimension product overflows"
        );
        yield return new TestCaseData(Header(0x0E, 100000, 100, 100), IdxCheck.TooLarge).SetName(
            "payload over the 1 GiB limit"
        );
        yield return new TestCaseData(Header(0x0D, 60000, 28, 28), IdxCheck.Truncated).SetName(
            "large claim, no payload"
        );
        yield return new TestCaseData(Header(0x08, 2, 3).Concat(new byte[5]).ToArray(), IdxCheck.Truncated).SetName(
            "payload truncated"
        );
        yield return new TestCaseData(Header(0x08, 2, 3).Concat(new byte[7]).ToArray(), IdxCheck.TrailingData).SetName(
            "trailing bytes"
        );
        yield return new TestCaseData(
            new byte[] { 0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7 },
            IdxCheck.CorruptGzip
        ).SetName("corrupt gzip");
    }

    [TestCaseSource(nameof(BadFiles))]
    public void Bad_file_fails_the_named_check(byte[] content, IdxCheck check)
    {
        string path = Path.Combine(_dir, "bad.idx");
        File.WriteAllBytes(path, content);
        var ex = Assert.Throws<DataFormatException>(() => Idx.Read(path));
        Assert.That(ex!.Check, Is.EqualTo(check), ex.Message);
        Assert.That(ex.Message, Does.Contain(path));
    }

    [Test]
    public void Missing_file_names_it()
    {
        var ex = Assert.Throws<DataFormatException>(() => Idx.Read(Path.Combine(_dir, "nope")));
        Assert.That(ex!.Check, Is.EqualTo(IdxCheck.Missing));
    }

    [Test]
    public void Reads_raw_and_gzip_alike()
    {
        var payload = Enumerable.Range(0, 24).Select(i => (byte)i).ToArray();
        string raw = Path.Combine(_dir, "a.idx"),
            gz = Path.Combine(_dir, "a.idx.gz");
        using (var f = File.Create(raw))
            Idx.Write(f, 0x08, [2, 3, 4], payload);
        TestSupport.WriteGz(gz, 0x08, [2, 3, 4], payload);
        foreach (var p in new[] { raw, gz })
        {
            var d = Idx.Read(p);
            Assert.That(d.Dims, Is.EqualTo(new[] { 2, 3, 4 }));
            Assert.That(d.Payload, Is.EqualTo(payload));
        }
    }

    [Test]
    public void Image_and_label_counts_must_match()
    {
        TestSupport.WriteTinyFashionMnist(_dir, 20, 10);
        TestSupport.WriteGz(Path.Combine(_dir, FashionMnist.Files[1]), 0x08, [19], new byte[19]);
        var ex = Assert.Throws<DataFormatException>(() => FashionMnist.Load(_dir));
        Assert.That(ex!.Check, Is.EqualTo(IdxCheck.Mismatch));
        Assert.That(ex.Message, Does.Contain("19 labels for 20 images"));
    }

    [Test]
    public void Labels_outside_the_ten_classes_are_refused()
    {
        TestSupport.WriteTinyFashionMnist(_dir, 5, 5);
        TestSupport.WriteGz(Path.Combine(_dir, FashionMnist.Files[3]), 0x08, [5], [1, 2, 10, 3, 4]);
        var ex = Assert.Throws<DataFormatException>(() => FashionMnist.Load(_dir));
        Assert.That(ex!.Message, Does.Contain("label 10 at index 2"));
    }

    [Test]
    public void The_embedded_subset_loads_with_its_documented_size()
    {
        var (train, test) = DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            Assert.That(train.Images.ShapeArray, Is.EqualTo(new[] { 10000, 28, 28 }));
            Assert.That(test.Count, Is.EqualTo(2000));
            var counts = train.Labels.ToArray<long>().GroupBy(l => l).ToDictionary(g => g.Key, g => g.Count());
            Assert.That(counts.Keys, Is.EquivalentTo(Enumerable.Range(0, 10).Select(i => (long)i)));
            Assert.That(counts.Values.Min(), Is.GreaterThan(800), "every class is well represented");
        }
    }

    [Test]
    public void Data_source_order_prefers_the_explicit_directory_then_the_environment()
    {
        TestSupport.WriteTinyFashionMnist(_dir, 30, 10);
        var (tr, te, source) = DataSources.LoadFashionMnist(_dir);
        tr.Dispose();
        te.Dispose();
        Assert.That(source, Does.Contain("--data"));
        Assert.Throws<DirectoryNotFoundException>(() => DataSources.LoadFashionMnist(Path.Combine(_dir, "missing")));
    }
}
