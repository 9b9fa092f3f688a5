using System.Diagnostics;
using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>An asynchronous parameter server with bounded staleness — stale-synchronous parallel (Ho et al. 2013).
/// The flattened parameters are cut into shards, each held by a server role (master weights and that shard's
/// optimizer state). Servers are either co-located with the workers (every rank serves one shard while it trains; the
/// default) or dedicated ranks (the last S ranks only serve; the first W = n − S train).
/// <para>Each worker step pushes the gradient slice of every shard to that shard's server and pulls the shard back.
/// Pushes are added to the server's pending sum, and once W gradients are pending (from whichever workers) their
/// average is applied as one optimizer step — n-softsync (Zhang et al. 2016): every gradient is applied exactly once,
/// with the weight it has in synchronous training; the learning rate is the one the pushing worker's schedule set.
/// The bound k holds at the pull: a worker that has pushed c gradients is served only once the slowest worker has
/// pushed at least c − k, so no worker runs more than k steps ahead of the slowest. k = 0 is bulk-synchronous (the
/// result equals synchronous data parallelism); <c>ssp:inf</c> never waits.</para>
/// <para>Messages are point-to-point sends over the process group's links (so network emulation and byte counters
/// apply); a co-located rank's own shard is served in process.</para></summary>
public sealed partial class ParameterServerStrategy : ITrainingStrategy
{
    private const int TagRequest = 0x5501,
        TagRequestData = 0x5502,
        TagReply = 0x5503,
        TagReplyData = 0x5504;
    private const int HeaderLongs = 3; // clock (−1: done; −2, −3: a commit's rendezvous), version read, learning rate (double bits)

    private readonly Module _model;
    private readonly IProcessGroup _group;
    private readonly Tensor[] _params;
    private readonly int _shardSize,
        _total,
        _shards,
        _dedicated,
        _myShard;
    private readonly ShardServer? _server;
    private readonly Optimizer? _lrHolder;
    private readonly Tensor? _lrDummy;
    private Thread[] _serving = [];
    private readonly long[] _versionRead;
    private readonly float[] _flat;
    private readonly List<Exception> _serverErrors = new();
    private long _clock;
    private bool _finished;

    /// <summary>The bound k (null: unbounded, fully asynchronous).</summary>
    public int? Bound { get; }

    /// <inheritdoc/>
    public string Name =>
        (Bound is int k ? $"ssp:{k.ToString(CultureInfo.InvariantCulture)}" : "ssp:inf")
        + (_dedicated > 0 ? $":{_dedicated.ToString(CultureInfo.InvariantCulture)}" : "");

    /// <summary>Ranks that train: all of them with co-located servers, the first n − S with S dedicated ones.</summary>
    public int Workers { get; }

    /// <summary>Whether this rank trains (a dedicated server rank does not: it calls <see
    /// cref="ServeUntilDone"/>).</summary>
    public bool IsWorker => _group.Rank < Workers;

    /// <summary>Whether this rank serves a shard.</summary>
    public bool IsServer => _myShard >= 0;

    /// <summary>The optimizer of the shard this rank serves; on a pure worker, a holder of the learning rate its
    /// schedule sets, which travels with its pushes.</summary>
    public Optimizer Optimizer => _server?.Optimizer ?? _lrHolder!;

    /// <inheritdoc/>
    public long BytesCommunicated { get; private set; }

    /// <inheritdoc/>
    public double CommunicationSeconds { get; private set; }

    /// <summary>Seconds this worker's pulls were held back by the staleness bound (reported by the servers).</summary>
    public double WaitSeconds { get; private set; }

    /// <summary>Staleness of the updates this rank's server applied (zeros on a pure worker).</summary>
    public StalenessStats Staleness => _server?.Staleness ?? default;

    /// <summary>The largest lead (pushes of the puller − pushes of the slowest worker) this rank's server
    /// allowed.</summary>
    public long ObservedMaxLead => _server?.MaxLead ?? 0;

    /// <summary>A checkpoint cannot capture pushes in flight between ranks.</summary>
    public bool CanCheckpoint => false;

    /// <param name="model">This rank's replica (built on every rank, dedicated servers included).</param> <param
    /// name="group">All ranks: workers, then dedicated servers.</param> <param name="makeOptimizer">Builds a shard's
    /// optimizer.</param> <param name="bound">The staleness bound k; null for none.</param> <param
    /// name="dedicatedServers">0: every rank serves a shard while it trains; S &gt; 0: the last S ranks only
    /// serve.</param> <param name="commitSteps">0: not elastic. N &gt; 0 (elastic recovery; co-located servers
    /// only): a commit point every N steps and at each <see cref="Commit"/>, where every shard's state is copied to
    /// the next rank.</param>
    public ParameterServerStrategy(
        Module model,
        IProcessGroup group,
        Func<IEnumerable<Tensor>, Optimizer> makeOptimizer,
        int? bound,
        int dedicatedServers = 0,
        int commitSteps = 0
    )
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        if (bound < 0)
            throw new ArgumentOutOfRangeException(nameof(bound), "the staleness bound must be 0 or more");
        if (dedicatedServers < 0 || dedicatedServers >= group.Size)
            throw new ArgumentOutOfRangeException(
                nameof(dedicatedServers),
                $"dedicated servers must leave at least one of the {group.Size} ranks to train, got {dedicatedServers}"
            );
        if (commitSteps < 0 || (commitSteps > 0 && dedicatedServers > 0))
            throw new ArgumentOutOfRangeException(
                nameof(commitSteps),
                "commit points (elastic recovery) need a positive period and servers co-located with the workers"
            );
        (_model, _group, Bound, _dedicated, _commitEvery) = (model, group, bound, dedicatedServers, commitSteps);
        Workers = group.Size - dedicatedServers;
        _shards = dedicatedServers == 0 ? group.Size : dedicatedServers;
        _myShard =
            dedicatedServers == 0 ? group.Rank
            : group.Rank >= Workers ? group.Rank - Workers
            : -1;
        TrainingStrategies.BroadcastFromRankZero(model, group);
        _params = model.Parameters().ToArray();
        _total = _params.Sum(p => p.NumEl);
        _shardSize = (_total + _shards - 1) / _shards;
        _flat = new float[_total];
        _versionRead = new long[_shards];
        Flatten(useGrads: false);
        if (IsServer)
        {
            var (start, length) = Shard(_myShard);
            _server = new ShardServer(_flat.AsSpan(start, length), Workers, bound, makeOptimizer);
        }
        else
        {
            _lrDummy = Tensor.Zeros([1]).DetachFromScope().RequiresGrad_();
            _lrHolder = makeOptimizer([_lrDummy]);
        }
        if (_commitEvery > 0)
            BeginCommits();
    }

    /// <summary>Starts serving the other workers, at the first step (or the finish): after a change of membership
    /// the shard's state is re-partitioned first, and a push that arrives earlier waits in the link.</summary>
    private void EnsureServing()
    {
        if (!IsServer || _serving.Length > 0)
            return;
        _serving = Enumerable
            .Range(0, Workers)
            .Where(w => w != _group.Rank)
            .Select(w => new Thread(() => Serve(w)) { IsBackground = true, Name = $"ps-shard{_myShard}-worker{w}" })
            .ToArray();
        foreach (var t in _serving)
            t.Start();
    }

    /// <summary>The rank that serves shard <paramref name="s"/>.</summary>
    private int Owner(int s) => _dedicated == 0 ? s : Workers + s;

    private (int Start, int Length) Shard(int s)
    {
        int start = Math.Min(s * _shardSize, _total);
        return (start, Math.Min(_shardSize, _total - start));
    }

    private void Flatten(bool useGrads)
    {
        int at = 0;
        foreach (var p in _params)
        {
            var src = useGrads ? p.Grad : p;
            if (src == null)
                Array.Clear(_flat, at, p.NumEl);
            else
            {
                using var c = src.Contiguous();
                c.AsReadOnlySpan<float>().CopyTo(_flat.AsSpan(at));
            }
            at += p.NumEl;
        }
    }

    /// <inheritdoc/>
    public void Step()
    {
        if (_finished)
            throw new InvalidOperationException("the parameter server has finished: no more steps");
        if (!IsWorker)
            throw new InvalidOperationException(
                $"rank {_group.Rank} is a dedicated parameter server: it serves (ServeUntilDone), it does not train"
            );
        EnsureServing();
        using var noGrad = GradMode.NoGrad();
        Flatten(useGrads: true);
        long clock = _clock++;
        long lrBits = BitConverter.DoubleToInt64Bits(Optimizer.Lr);
        var sw = Stopwatch.StartNew();
        // Push to every server first (the own shard in process), then pull: a worker never waits on a pull before all
        // its pushes are out, so the bound cannot deadlock.
        if (IsServer)
        {
            var (myStart, myLen) = Shard(_myShard);
            _server!.Push(_group.Rank, clock, _versionRead[_myShard], Optimizer.Lr, _flat.AsSpan(myStart, myLen));
        }
        var sends = new List<(Work, Tensor)>();
        for (int s = 0; s < _shards; s++)
        {
            if (s == _myShard)
                continue;
            var (start, len) = Shard(s);
            var header = Tensor.FromArray(new long[] { clock, _versionRead[s], lrBits }).DetachFromScope();
            var data = Tensor.FromArray(_flat.AsSpan(start, len).ToArray()).DetachFromScope();
            sends.Add((_group.Send(header, Owner(s), TagRequest), header));
            sends.Add((_group.Send(data, Owner(s), TagRequestData), data));
            BytesCommunicated += 8 * HeaderLongs + 4L * len;
        }
        double waited = 0;
        if (IsServer)
        {
            var (myStart, myLen) = Shard(_myShard);
            waited = _server!.Pull(clock + 1, out _versionRead[_myShard], _flat.AsSpan(myStart, myLen));
        }
        for (int s = 0; s < _shards; s++)
        {
            if (s == _myShard)
                continue;
            var (start, len) = Shard(s);
            using var header = Tensor.Zeros([2], DType.Int64);
            using var data = Tensor.Zeros([len]);
            _group.Recv(header, Owner(s), TagReply).Wait();
            _group.Recv(data, Owner(s), TagReplyData).Wait();
            var h = header.ToArray<long>();
            _versionRead[s] = h[0];
            waited = Math.Max(waited, h[1] / 1e6);
            data.AsReadOnlySpan<float>().CopyTo(_flat.AsSpan(start, len));
            BytesCommunicated += 16 + 4L * len;
        }
        foreach (var (w, t) in sends)
        {
            w.Wait();
            t.Dispose();
        }
        double elapsed = sw.Elapsed.TotalSeconds;
        WaitSeconds += waited;
        CommunicationSeconds += Math.Max(0, elapsed - waited);
        ThrowIfServerFailed();
        CopyIntoModel();
        if (_commitEvery > 0)
            AfterElasticStep();
    }

    /// <summary>Serves worker <paramref name="w"/>'s requests for this rank's shard until it says it is done.</summary>
    private void Serve(int w)
    {
        try
        {
            var (_, len) = Shard(_myShard);
            using var header = Tensor.Zeros([HeaderLongs], DType.Int64).DetachFromScope();
            using var grad = Tensor.Zeros([len]).DetachFromScope();
            var reply = new float[len];
            while (true)
            {
                _group.Recv(header, w, TagRequest).Wait();
                var h = header.ToArray<long>();
                if (h[0] is CommitRequest or CommitAck)
                {
                    ServeRendezvous(w, h[0] == CommitRequest, h[1], reply);
                    continue;
                }
                if (h[0] < 0)
                {
                    _server!.Leave(w);
                    return;
                }
                _group.Recv(grad, w, TagRequestData).Wait();
                _server!.Push(w, h[0], h[1], BitConverter.Int64BitsToDouble(h[2]), grad.AsReadOnlySpan<float>());
                double waited = _server.Pull(h[0] + 1, out long version, reply);
                using var replyHeader = Tensor.FromArray(new long[] { version, (long)(waited * 1e6) });
                using var replyData = Tensor.FromArray(reply);
                var a = _group.Send(replyHeader, w, TagReply);
                var b = _group.Send(replyData, w, TagReplyData);
                a.Wait();
                b.Wait();
            }
        }
        catch (Exception e)
        {
            lock (_serverErrors)
                _serverErrors.Add(e);
            _server!.Leave(w, failed: true);
        }
    }

    private void ThrowIfServerFailed()
    {
        lock (_serverErrors)
            if (_serverErrors.Count > 0)
                throw new CollectiveException(
                    $"parameter server shard {_myShard} (rank {_group.Rank}) failed: {_serverErrors[0].Message}",
                    _serverErrors[0]
                );
    }

    /// <summary>A dedicated server's whole job: serve until every worker is done, then <see cref="Finish"/>.</summary>
    public void ServeUntilDone()
    {
        if (IsWorker)
            throw new InvalidOperationException($"rank {_group.Rank} is a worker: it trains and calls Step");
        Finish();
    }

    /// <summary>Tells every server this worker is done and waits until every worker is done with this rank's shard
    /// (the servers keep serving the slower workers); then gathers the final shards into every replica. Every rank
    /// calls it (it ends with a collective); <see cref="Dispose"/> calls it if not before.</summary>
    public void Finish()
    {
        if (_finished)
            return;
        _finished = true;
        EnsureServing();
        if (IsWorker)
        {
            if (IsServer)
                _server!.Leave(_group.Rank);
            var sends = new List<(Work, Tensor)>();
            for (int s = 0; s < _shards; s++)
                if (s != _myShard)
                {
                    var done = Tensor.FromArray(new long[] { -1, 0, 0 }).DetachFromScope();
                    sends.Add((_group.Send(done, Owner(s), TagRequest), done));
                }
            foreach (var (w, t) in sends)
            {
                w.Wait();
                t.Dispose();
            }
        }
        foreach (var t in _serving)
            t.Join();
        ThrowIfServerFailed();
        // Every server now holds its final shard (pending gradients applied): gather them so every replica ends with
        // the final parameters, not the last ones it pulled. Pure workers contribute zeros.
        using var noGrad = GradMode.NoGrad();
        var mine = new float[_shardSize];
        _server?.Snapshot().CopyTo(mine, 0);
        using var shard = Tensor.FromArray(mine);
        using var all = Tensor.Zeros([_shardSize * _group.Size]);
        _group.AllGather(all, shard).Wait();
        var gathered = all.AsReadOnlySpan<float>();
        for (int s = 0; s < _shards; s++)
        {
            var (start, len) = Shard(s);
            gathered.Slice(Owner(s) * _shardSize, len).CopyTo(_flat.AsSpan(start, len));
        }
        CopyIntoModel();
    }

    private void CopyIntoModel()
    {
        int at = 0;
        foreach (var p in _params)
        {
            using var src = Tensor.FromArray(_flat.AsSpan(at, p.NumEl).ToArray(), p.ShapeArray);
            Ops.CopyInto(p, src);
            p.ZeroGrad();
            at += p.NumEl;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_commitEvery > 0 && !_finished)
        {
            Abandon(); // elastic: this generation's group is gone (a change of membership), so there is no finish
            return;
        }
        try
        {
            Finish();
        }
        finally
        {
            DisposeCommits();
            _server?.Dispose();
            _lrHolder?.Dispose();
            _lrDummy?.Dispose();
        }
    }
}
