using System.Globalization;
using System.Text;
using SkiaSharp;

namespace HpcEngine.Tests.Data.Prepared;

/// <summary>Raw data the preparation tests write themselves: an image tree of PNGs (through SkiaSharp) whose class
/// is the dominant colour, and a CSV table with numeric, categorical and missing values and a known relation between
/// features and label.</summary>
internal static class PreparedTestData
{
    public static readonly string[] ImageClasses = ["blue", "green", "red"];

    /// <summary>DIR/CLASS/img-K.png, <paramref name="perClass"/> per class, of varying sizes (so resizing is
    /// exercised); class c's images are dominated by channel (2 − c) of RGB... red, green, blue.</summary>
    public static void WriteImageTree(string dir, int perClass, int seed = 0)
    {
        var rng = new Random(seed);
        foreach (var (name, c) in ImageClasses.Select((n, i) => (n, i)))
        {
            Directory.CreateDirectory(Path.Combine(dir, name));
            for (int k = 0; k < perClass; k++)
            {
                int w = 12 + rng.Next(20),
                    h = 12 + rng.Next(20);
                using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
                for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    var v = new byte[3];
                    for (int ch = 0; ch < 3; ch++)
                        v[ch] = (byte)rng.Next(90);
                    // blue → B, green → G, red → R
                    v[
                        name switch
                        {
                            "red" => 0,
                            "green" => 1,
                            _ => 2,
                        }
                    ] = (byte)(150 + rng.Next(100));
                    bitmap.SetPixel(x, y, new SKColor(v[0], v[1], v[2]));
                }
                WritePng(bitmap, Path.Combine(dir, name, $"img-{k:D3}.png"));
            }
        }
    }

    public static void WritePng(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>A CSV of <paramref name="rows"/> rows: id (unique), x1 ~ N(0, 1), x2 ~ U(0, 10) with 10 % missing,
    /// color in {red, green, blue} with 5 % missing, and label "yes" when x1 + (red ? 1 : −0.5) + noise > 0. Returns
    /// the share of the majority class.</summary>
    public static double WriteTable(string path, int rows, int seed = 0)
    {
        var rng = new Random(seed);
        var s = new StringBuilder("id,x1,x2,color,label\n");
        int yes = 0;
        string[] colors = ["red", "green", "blue"];
        for (int i = 0; i < rows; i++)
        {
            double x1 = Gaussian(rng),
                x2 = rng.NextDouble() * 10;
            string color = colors[rng.Next(3)];
            bool label = x1 + (color == "red" ? 1 : -0.5) + 0.3 * Gaussian(rng) > 0;
            yes += label ? 1 : 0;
            string x2s = rng.NextDouble() < 0.1 ? "" : x2.ToString("F3", CultureInfo.InvariantCulture);
            string cs = rng.NextDouble() < 0.05 ? "NA" : color;
            s.Append(CultureInfo.InvariantCulture, $"{i},{x1:F4},{x2s},{cs},{(label ? "yes" : "no")}\n");
        }
        File.WriteAllText(path, s.ToString());
        return Math.Max(yes, rows - yes) / (double)rows;
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
