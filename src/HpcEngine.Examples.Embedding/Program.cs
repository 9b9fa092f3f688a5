namespace HpcEngine.Examples.Embedding;

/// <summary><c>dotnet run --project src/HpcEngine.Examples.Embedding -- [DATA_DIR] [EPOCHS]</c></summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string? data = args.Length > 0 ? args[0] : null;
        int epochs = args.Length > 1 && int.TryParse(args[1], out int e) && e > 0 ? e : 3;
        string weights = Path.Combine(Path.GetTempPath(), "hpcengine-example.safetensors");
        FashionExample.Run(data, epochs, weights, Console.Out);
        Console.WriteLine($"weights saved to {weights}");
        return 0;
    }
}
