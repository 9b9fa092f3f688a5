using System.Diagnostics;
using System.Text;
using HpcEngine.Distributed;

namespace HpcEngine.Serving;

/// <summary>Where each rank of a job serves its training monitor, kept in the job's store (key
/// <c>monitor/rank/R</c>), so any rank's dashboard can draw every rank's timeline. Only addresses pass through the
/// store: the figures stay with each rank and are fetched from it (a lost rank shows as unreachable, and the store is
/// the launcher's, not a training rank's). The directory holds its own store connection.</summary>
public sealed class MonitorDirectory : IDisposable
{
    /// <summary>How often a rank not yet found is looked up again.</summary>
    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(5);

    private readonly IStore _store;
    private readonly int _worldSize;
    private readonly Dictionary<int, Uri> _known = [];
    private readonly Stopwatch _sinceLookup = new();
    private readonly object _gate = new();

    /// <summary>A directory of the <paramref name="worldSize"/> ranks of the job <paramref name="store"/> serves (the
    /// directory disposes it).</summary>
    public MonitorDirectory(IStore store, int worldSize)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        _store = store;
        _worldSize = worldSize;
    }

    private static string Key(int rank) => $"monitor/rank/{rank}";

    /// <summary>Says where rank <paramref name="rank"/>'s monitor listens.</summary>
    public void Publish(int rank, Uri address)
    {
        ArgumentNullException.ThrowIfNull(address);
        _store.Set(Key(rank), Encoding.UTF8.GetBytes(address.ToString()));
        lock (_gate)
            _known[rank] = address;
    }

    /// <summary>The ranks whose monitors are known, by rank. Ranks not yet published are looked up again at most every
    /// few seconds (a store lookup of an absent key waits for its short timeout).</summary>
    public IReadOnlyDictionary<int, Uri> Known()
    {
        lock (_gate)
        {
            if (_known.Count < _worldSize && (!_sinceLookup.IsRunning || _sinceLookup.Elapsed >= Retry))
            {
                for (int r = 0; r < _worldSize; r++)
                    if (!_known.ContainsKey(r))
                        try
                        {
                            var value = _store.Get(Key(r), TimeSpan.FromMilliseconds(50));
                            _known[r] = new Uri(Encoding.UTF8.GetString(value));
                        }
                        catch (Exception e) when (e is TimeoutException or UriFormatException or IOException)
                        {
                            // not up yet, or not a monitor address: looked up again later
                        }
                _sinceLookup.Restart();
            }
            return new Dictionary<int, Uri>(_known);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _store.Dispose();
}
