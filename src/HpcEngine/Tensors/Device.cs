namespace HpcEngine;

/// <summary>Kinds of device a tensor can live on.</summary>
public enum DeviceType
{
    /// <summary>Host memory, the engine's own kernels.</summary>
    Cpu,

    /// <summary>An NVIDIA GPU (HpcEngine.Cuda registers its backend).</summary>
    Cuda,

    /// <summary>A device served by a backend the host application registers (an extension point; the engine's own
    /// tests register one backed by host memory to check the device dispatch without a GPU).</summary>
    External,
}

/// <summary>Where a tensor's storage lives: <c>cpu</c> or <c>cuda:N</c>.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(IO.ParsableJsonConverter<Device>))]
public readonly record struct Device(DeviceType Type, int Index = 0) : IParsable<Device>
{
    /// <summary>The host CPU.</summary>
    public static Device Cpu { get; } = new(DeviceType.Cpu);

    /// <summary>CUDA device <paramref name="index"/>; usable once a CUDA backend is registered.</summary>
    public static Device Cuda(int index = 0) => new(DeviceType.Cuda, index);

    /// <summary>External device <paramref name="index"/> (see <see cref="DeviceType.External"/>).</summary>
    public static Device External(int index = 0) => new(DeviceType.External, index);

    /// <summary>Parses <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>external:N</c>.</summary>
    public static Device Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Equals("cpu", StringComparison.OrdinalIgnoreCase))
            return Cpu;
        if (text.Equals("cuda", StringComparison.OrdinalIgnoreCase))
            return Cuda();
        if (
            text.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(
                text.AsSpan(5),
                System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture,
                out int i
            )
        )
            return Cuda(i);
        if (
            text.StartsWith("external:", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(
                text.AsSpan(9),
                System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture,
                out int e
            )
        )
            return External(e);
        throw new FormatException($"'{text}' is not a device: use cpu, cuda or cuda:N");
    }

    /// <inheritdoc/>
    public override string ToString() =>
        Type switch
        {
            DeviceType.Cpu => "cpu",
            DeviceType.Cuda => $"cuda:{Index}",
            _ => $"external:{Index}",
        };

    static Device IParsable<Device>.Parse(string s, IFormatProvider? provider) => Parse(s);

    static bool IParsable<Device>.TryParse(string? s, IFormatProvider? provider, out Device result)
    {
        result = Cpu;
        if (s == null)
            return false;
        try
        {
            result = Parse(s);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
