namespace HpcEngine.Examples.Embedding;

/// <summary><c>dotnet run --project src/HpcEngine.Examples.Embedding -- [DATA_DIR] [EPOCHS]</c> (train, save, reload,
/// predict) or <c>-- study OUT_DIR [DATA_DIR]</c> (a small strategy study run from C#).</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "study")
        {
            var runs = StrategyStudyExample.Run(args.Length > 2 ? args[2] : null, epochs: 1, args[1], Console.Out);
            return runs.All(r => r.Status != "failed") ? 0 : 1;
        }
        string? data = args.Length > 0 ? args[0] : null;
        int epochs = args.Length > 1 && int.TryParse(args[1], out int e) && e > 0 ? e : 3;
        string weights = Path.Combine(Path.GetTempPath(), "hpcengine-example.safetensors");
        FashionExample.Run(data, epochs, weights, Console.Out);
        Console.WriteLine($"weights saved to {weights}");
        return 0;
    }
}
