namespace HpcEngine.Distributed.Tcp;

/// <summary>How the mesh notices a lost peer: a failed link (the first one is remembered as the root cause), and with
/// a peer timeout, silence.</summary>
internal sealed partial class TcpMesh
{
    /// <summary>The peers not heard from (no data, no heartbeat) for three heartbeat intervals, as "; no word from rank
    /// 2 for 4.1s, ..." for error messages; empty when every peer speaks. Links that have already failed count too: a
    /// send to a partitioned peer times out at about the moment the op does, and the silence is still the
    /// news.</summary>
    public string Silence()
    {
        var limit = 3 * Options.HeartbeatInterval;
        var silent = _links
            .Where(l => l != null && l.SinceHeard > limit)
            .Select(l => $"rank {l!.Peer} for {l.SinceHeard.TotalSeconds:F1}s")
            .ToList();
        return silent.Count == 0
            ? ""
            : $"; no word (not even a heartbeat) from {string.Join(", ", silent)}: unreachable (a network partition) or frozen";
    }

    private void OnLinkFailed(PeerLink link, Exception e)
    {
        var reason = new IOException($"link to rank {link.Peer} failed: {e.Message}", e);
        Interlocked.CompareExchange(ref _failedPeer, link.Peer, -1);
        Abort(reason);
    }

    private int _failedPeer = -1;

    /// <summary>Test hook (<see cref="TcpProcessGroup.SimulateFreeze"/>): no more heartbeats or silence checks.</summary>
    public void Freeze() => _heartbeat?.Dispose();

    /// <summary>The peer whose link failed first (the root cause of this mesh's abort), or null: what an elastic
    /// group reports as lost.</summary>
    public int? FailedPeer => Volatile.Read(ref _failedPeer) is >= 0 and var p ? p : null;

    /// <summary>With <see cref="TcpOptions.PeerTimeout"/>: fails the link of a peer silent for longer (a frozen or
    /// partitioned process keeps its sockets open, so only silence shows it).</summary>
    private void FailSilentPeers()
    {
        if (Options.PeerTimeout is not { } limit || Failure != null)
            return;
        foreach (var l in _links)
            if (l != null && l.SinceHeard > limit)
            {
                OnLinkFailed(
                    l,
                    new IOException(
                        $"the link to rank {l.Peer} heard nothing, not even a heartbeat, for {l.SinceHeard.TotalSeconds:F1}s "
                            + $"(peer timeout {limit.TotalSeconds:F1}s): it is frozen or cut off"
                    )
                );
                return;
            }
    }
}
