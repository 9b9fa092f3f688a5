namespace HpcEngine.Distributed.Tcp;

/// <summary>The last collectives of a group, kept for error reports (like c10d's flight recorder).</summary>
internal sealed class FlightRecorder(int capacity = 256)
{
    internal sealed class Entry
    {
        public long Sequence;
        public string Op = "";
        public long Bytes;
        public DateTime Start;
        public double Ms;
        public string State = "running";
    }

    private readonly Entry[] _ring = new Entry[capacity];
    private long _count;
    private readonly Lock _lock = new();

    public Entry Start(string op, long seq, long bytes)
    {
        var e = new Entry
        {
            Op = op,
            Sequence = seq,
            Bytes = bytes,
            Start = DateTime.UtcNow,
        };
        lock (_lock)
            _ring[_count++ % _ring.Length] = e;
        return e;
    }

    public static void End(Entry e, string state)
    {
        e.Ms = (DateTime.UtcNow - e.Start).TotalMilliseconds;
        e.State = state;
    }

    public override string ToString()
    {
        lock (_lock)
        {
            var sb = new System.Text.StringBuilder(
                "flight recorder (oldest first): seq op bytes start duration state\n"
            );
            long first = Math.Max(0, _count - _ring.Length);
            for (long i = first; i < _count; i++)
            {
                var e = _ring[i % _ring.Length];
                sb.Append($"  #{e.Sequence} {e.Op} {e.Bytes} B {e.Start:HH:mm:ss.fff} {e.Ms:F2} ms {e.State}\n");
            }
            return sb.ToString();
        }
    }
}
