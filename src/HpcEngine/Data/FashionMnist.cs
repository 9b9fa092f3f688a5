namespace HpcEngine.Data;

/// <summary>Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 28×28 grey images of 10 clothing classes, in IDX
/// files.</summary>
public static class FashionMnist
{
    /// <summary>The four files of the dataset.</summary>
    public static readonly string[] Files =
    [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];

    /// <summary>Class names by label.</summary>
    public static readonly string[] ClassNames =
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];

    /// <summary>Per-pixel mean and standard deviation of the training set (of x/255), for normalisation.</summary>
    public const double Mean = 0.2860,
        Std = 0.3530;

    /// <summary>Debian's dataset-fashion-mnist location.</summary>
    public const string DebianDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>True when <paramref name="dir"/> holds the four files (gzip or raw, by the same names less
    /// ".gz").</summary>
    public static bool IsPresentIn(string dir) =>
        Files.All(f => File.Exists(Path.Combine(dir, f)) || File.Exists(Path.Combine(dir, f[..^3])));

    /// <summary>Loads the training and test splits from a directory.</summary>
    public static (ImageDataset Train, ImageDataset Test) Load(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Fashion-MNIST directory '{dir}' does not exist");
        return Load(name =>
        {
            string p = Path.Combine(dir, name);
            if (!File.Exists(p) && File.Exists(p[..^3]))
                p = p[..^3];
            if (!File.Exists(p))
                throw new DataFormatException(
                    p,
                    IdxCheck.Missing,
                    $"file not found (a Fashion-MNIST directory holds {string.Join(", ", Files)})"
                );
            return (File.OpenRead(p), p);
        });
    }

    /// <summary>Loads both splits through an opener that maps a file name to a stream and a name for errors.</summary>
    public static (ImageDataset Train, ImageDataset Test) Load(Func<string, (Stream Stream, string Name)> open)
    {
        ArgumentNullException.ThrowIfNull(open);
        var train = LoadSplit(open, Files[0], Files[1]);
        try
        {
            return (train, LoadSplit(open, Files[2], Files[3]));
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    private static ImageDataset LoadSplit(Func<string, (Stream, string)> open, string imagesFile, string labelsFile)
    {
        var (imgStream, imgName) = open(imagesFile);
        IdxData images;
        using (imgStream)
            images = Idx.Read(imgStream, imgName);
        var (lblStream, lblName) = open(labelsFile);
        IdxData labels;
        using (lblStream)
            labels = Idx.Read(lblStream, lblName);
        if (images.TypeCode != 0x08 || images.Dims.Length != 3)
            throw new DataFormatException(
                imgName,
                IdxCheck.Mismatch,
                $"expected uint8 images [N, rows, cols], got type 0x{images.TypeCode:x2} with {images.Dims.Length} dims"
            );
        if (labels.TypeCode != 0x08 || labels.Dims.Length != 1)
            throw new DataFormatException(
                lblName,
                IdxCheck.Mismatch,
                $"expected uint8 labels [N], got type 0x{labels.TypeCode:x2} with {labels.Dims.Length} dims"
            );
        if (images.Dims[0] != labels.Dims[0])
            throw new DataFormatException(
                lblName,
                IdxCheck.Mismatch,
                $"{labels.Dims[0]} labels for {images.Dims[0]} images in {imgName}"
            );
        int bad = Array.FindIndex(labels.Payload, l => l >= 10);
        if (bad >= 0)
            throw new DataFormatException(
                lblName,
                IdxCheck.Mismatch,
                $"label {labels.Payload[bad]} at index {bad} is not a class 0..9"
            );
        var x = Tensor.FromBytes(images.Payload, DType.UInt8, images.Dims);
        using var l8 = Tensor.FromBytes(labels.Payload, DType.UInt8, labels.Dims);
        return new ImageDataset(x, l8.To(DType.Int64), 10);
    }
}
