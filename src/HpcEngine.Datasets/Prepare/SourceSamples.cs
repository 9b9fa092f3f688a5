using System.Text.Json;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>One split's samples in memory, fixed-size records back to back, and their labels.</summary>
internal sealed class SplitSamples(byte[] samples, int[] labels)
{
    public byte[] Samples { get; } = samples;
    public int[] Labels { get; } = labels;
    public int Count => Labels.Length;
}

/// <summary>What a source reader gives the preparer: both splits, what a sample is, the class names, the
/// preprocessing (statistics included) and what was skipped.</summary>
internal sealed record SourceSamples(
    SplitSamples Train,
    SplitSamples Test,
    FeatureEntry Feature,
    IReadOnlyList<string> Classes,
    JsonElement Preprocessing,
    IReadOnlyList<SkippedEntry> Skipped
);

/// <summary>The seeded split of n samples into (train, test) index lists, each in the source's order.</summary>
internal static class Splitting
{
    public static (int[] Train, int[] Test) Fraction(int n, SplitSpec split)
    {
        var perm = Data.Sampler.Permutation(n, true, split.Seed, 0);
        int test = (int)Math.Round(n * split.TestFraction);
        test = Math.Clamp(test, n > 1 ? 1 : 0, Math.Max(0, n - 1));
        var testSet = perm.Take(test).Order().ToArray();
        var trainSet = perm.Skip(test).Order().ToArray();
        return (trainSet, testSet);
    }

    /// <summary>Per-channel mean and std of x/255 over the samples, from exact integer sums (so the result does not
    /// depend on how the work was split over threads).</summary>
    public static (double[] Mean, double[] Std) PixelStatistics(SplitSamples split, int channels, int workers)
    {
        int bytes = split.Count == 0 ? 0 : split.Samples.Length / split.Count;
        int plane = bytes / channels;
        var sum = new long[channels];
        var squares = new long[channels];
        var gate = new object();
        System.Threading.Tasks.Parallel.For(
            0,
            split.Count,
            new ParallelOptions { MaxDegreeOfParallelism = workers },
            () => (new long[channels], new long[channels]),
            (i, _, acc) =>
            {
                var s = split.Samples.AsSpan(i * bytes, bytes);
                for (int c = 0; c < channels; c++)
                {
                    long a = 0,
                        q = 0;
                    foreach (byte b in s.Slice(c * plane, plane))
                    {
                        a += b;
                        q += b * b;
                    }
                    acc.Item1[c] += a;
                    acc.Item2[c] += q;
                }
                return acc;
            },
            acc =>
            {
                lock (gate)
                    for (int c = 0; c < channels; c++)
                    {
                        sum[c] += acc.Item1[c];
                        squares[c] += acc.Item2[c];
                    }
            }
        );
        double n = (double)split.Count * plane;
        var mean = new double[channels];
        var std = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            double m = sum[c] / n,
                v = squares[c] / n - m * m;
            mean[c] = Math.Round(m / 255, 6);
            std[c] = Math.Round(Math.Sqrt(Math.Max(v, 0)) / 255, 6);
            if (std[c] <= 0)
                std[c] = 1;
        }
        return (mean, std);
    }
}
