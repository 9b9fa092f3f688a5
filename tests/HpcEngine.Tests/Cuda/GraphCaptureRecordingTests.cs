using HpcEngine.Backends;
using HpcEngine.Cuda;

namespace HpcEngine.Tests.Cuda;

using Ops = HpcEngine.Ops;

/// <summary>CUDA-graph capture through the real backend and <see cref="CudaGraph"/>, on a recording stream (no GPU):
/// the graph holds exactly an eager step's kernels, a replay runs them without a call into the engine, the memory
/// the graph writes is never handed to work outside it until the graph is disposed, Adam's step count advances in the
/// graph, and a step that reads back to the host is refused with everything left usable.</summary>
[TestFixture]
[NonParallelizable] // the backend registry is process-wide
public class GraphCaptureRecordingTests
{
    private RecordingCudaStream _stream = null!;
    private static readonly Device Dev = Device.External(0);

    [SetUp]
    public void Register()
    {
        _stream = new RecordingCudaStream();
        DeviceBackends.Register(DeviceType.External, new CudaDeviceBackend(_stream));
    }

    [TearDown]
    public void Unregister() => DeviceBackends.Unregister(DeviceType.External);

    private sealed class Setup : IDisposable
    {
        public required HpcEngine.NN.Module Model;
        public required HpcEngine.Optim.Optimizer Optimizer;
        public required Tensor X,
            Y,
            Loss;

        public void Step()
        {
            using var scope = new TensorScope();
            Optimizer.ZeroGrad();
            var loss = F.CrossEntropy(Model.Call(X), Y);
            loss.Backward();
            Optimizer.Step();
            Loss.CopyFrom(loss);
        }

        public void Dispose()
        {
            Optimizer.Dispose();
            Model.Dispose();
            X.Dispose();
            Y.Dispose();
            Loss.Dispose();
        }
    }

    private static Setup Make(string optimizer)
    {
        var model = HpcEngine.NN.Models.Create("mlp", new Generator(1));
        model.To(Dev);
        HpcEngine.Optim.Optimizer opt =
            optimizer == "adam"
                ? new HpcEngine.Optim.Adam(model.Parameters(), lr: 1e-3)
                : new HpcEngine.Optim.Sgd(model.Parameters(), lr: 0.1, momentum: 0.9);
        return new Setup
        {
            Model = model,
            Optimizer = opt,
            X = Tensor.Randn([8, 1, 28, 28], DType.Float32, new Generator(2)).To(Dev),
            Y = Tensor.FromArray(new long[8]).To(Dev),
            Loss = Tensor.Empty([], DType.Float32, Dev),
        };
    }

    private static HashSet<ulong> Pointers(IEnumerable<RecordingCudaStream.Call> calls) =>
        calls.SelectMany(c => c.Args).OfType<ulong>().Where(p => p >= 0x10000).ToHashSet();

    [TestCase("sgd")]
    [TestCase("adam")]
    public void The_graph_holds_an_eager_steps_kernels_and_replays_them_without_the_engine(string optimizer)
    {
        using var s = Make(optimizer);
        s.Step();
        int before = _stream.Launches.Count;
        s.Step();
        var eager = _stream.Launches.Skip(before).Select(c => c.Name).ToList();
        using var graph = CudaGraph.Capture(_stream, s.Step, warmup: 0);
        var recorded = _stream.Graphs.Values.Single();
        Assert.That(recorded.Select(c => c.Name), Is.EqualTo(eager), "the same kernels in the same order");
        if (optimizer == "adam")
            Assert.That(
                recorded.Count(c => c.Name == "adam_advance_f32"),
                Is.EqualTo(s.Model.Parameters().Count()),
                "the step count advances inside the graph"
            );
        int launched = _stream.Launches.Count;
        long allocations = _stream.Memory.Stats.DeviceAllocations;
        for (int i = 0; i < 3; i++)
            graph.Replay();
        Assert.That(_stream.Replays, Is.EqualTo(3));
        Assert.That(_stream.Launches.Count - launched, Is.EqualTo(3 * recorded.Count));
        Assert.That(_stream.Memory.Stats.DeviceAllocations, Is.EqualTo(allocations), "a replay allocates nothing");
    }

    [Test]
    public void A_learning_rate_set_between_replays_is_written_where_the_graphs_kernels_read_it()
    {
        using var s = Make("sgd");
        s.Step();
        using var graph = CudaGraph.Capture(_stream, s.Step, warmup: 0);
        var sgd = _stream.Graphs.Values.Single().Where(c => c.Name == "sgd_f32").ToList();
        Assert.That(sgd, Is.Not.Empty);
        var lrPointer = (ulong)sgd[0].Args[4];
        Assert.That(
            sgd.Select(c => (ulong)c.Args[4]),
            Is.All.EqualTo(lrPointer),
            "one device learning rate for every parameter"
        );
        Assert.That(
            _stream
                .Graphs.Values.Single()
                .Where(c => c.Name.StartsWith("fill", StringComparison.Ordinal))
                .Select(c => (ulong)c.Args[0]),
            Has.None.EqualTo(lrPointer),
            "the graph never overwrites the rate"
        );
        int before = _stream.Launches.Count;
        s.Optimizer.Lr = 0.5; // a schedule's step, outside the graph
        var fill = _stream.Launches.Skip(before).Single();
        Assert.That(fill.Name, Is.EqualTo("fill_b32"));
        Assert.That((ulong)fill.Args[0], Is.EqualTo(lrPointer));
        Assert.That((ulong)fill.Args[1], Is.EqualTo((ulong)BitConverter.SingleToUInt32Bits(0.5f)));
        graph.Replay();
    }

    [Test]
    public void Each_replay_draws_the_random_numbers_an_eager_step_would_draw_next()
    {
        var gen = new Generator(5);
        using var x = Tensor.Randn([10, 10], DType.Float32, new Generator(6)).To(Dev);
        void Step()
        {
            using var scope = new TensorScope();
            F.Dropout(x, 0.5, generator: gen);
            F.Dropout(x, 0.2, generator: gen);
        }
        Step(); // eager: reserves 2 × 25 counters
        ulong atCapture = gen.Offset;
        using var graph = CudaGraph.Capture(_stream, Step, warmup: 0);
        ulong span = gen.Offset - atCapture;
        Assert.That(span, Is.EqualTo(50UL));
        var draws = _stream.Graphs.Values.Single().Where(c => c.Name == "bernoulli_graph_f32").ToList();
        Assert.That(draws, Has.Count.EqualTo(2));
        var offsetPointer = (ulong)draws[0].Args[3];
        Assert.That((ulong)draws[1].Args[3], Is.EqualTo(offsetPointer), "one replay offset per generator");
        Assert.That(
            draws.Select(d => (ulong)d.Args[4]),
            Is.EqualTo(new[] { atCapture, atCapture + 25 }),
            "the captured starts"
        );
        for (int k = 1; k <= 3; k++)
        {
            int before = _stream.Launches.Count;
            graph.Replay();
            var set = _stream.Launches.Skip(before).First();
            Assert.That((ulong)set.Args[0], Is.EqualTo(offsetPointer));
            // Replay k draws at the capture's start + (k − 1) spans (a zero is written by memset).
            if (k == 1)
                Assert.That(set.Name, Is.EqualTo("memset"));
            else
                Assert.That(
                    (set.Name, (ulong)set.Args[1]),
                    Is.EqualTo(("fill_b64", (ulong)(k - 1) * span)),
                    $"replay {k}"
                );
            Assert.That(
                gen.Offset,
                Is.EqualTo(atCapture + (ulong)k * span),
                "the generator advanced as by k eager steps"
            );
        }
    }

    [Test]
    public void Memory_the_graph_writes_is_not_handed_out_until_the_graph_is_disposed()
    {
        using var s = Make("sgd");
        int start = _stream.Launches.Count;
        s.Step();
        var warm = Pointers(_stream.Launches.Skip(start)); // parameters, inputs, and the eager temporaries (now cached)
        var graph = CudaGraph.Capture(_stream, s.Step, warmup: 0);
        var pool = Pointers(_stream.Graphs.Values.Single());
        pool.ExceptWith(warm); // what the capture allocated: the graph's private memory
        Assert.That(pool, Is.Not.Empty);
        Assert.That(graph.PoolBlocks, Is.GreaterThan(0));

        start = _stream.Launches.Count;
        s.Step(); // eager work beside the graph
        Assert.That(
            Pointers(_stream.Launches.Skip(start)).Intersect(pool),
            Is.Empty,
            "eager temporaries never land in the graph's memory"
        );

        graph.Dispose();
        start = _stream.Launches.Count;
        for (int i = 0; i < 2; i++)
            s.Step();
        Assert.That(
            Pointers(_stream.Launches.Skip(start)).Intersect(pool),
            Is.Not.Empty,
            "after dispose the pool's blocks serve the cache again"
        );
    }

    [Test]
    public void A_step_that_reads_back_is_refused_and_leaves_the_stream_and_allocator_usable()
    {
        using var s = Make("sgd");
        s.Step();
        var e = Assert.Throws<InvalidOperationException>(() =>
            CudaGraph.Capture(
                _stream,
                () =>
                {
                    s.Step();
                    _ = s.Loss.Item(); // a device-to-host copy
                },
                warmup: 0
            )
        );
        Assert.That(e!.Message, Does.Contain("graph capture").And.Contain("Replay"));
        Assert.That(_stream.Capturing, Is.False);
        Assert.That(_stream.Graphs, Is.Empty, "no graph left behind");
        var again = CudaGraph.Capture(_stream, s.Step, warmup: 0); // a new capture starts cleanly
        again.Dispose();
        using var x = Tensor.Randn([4], DType.Float32, new Generator(3)).To(Dev);
        Assert.DoesNotThrow(() => x.ToArray<float>(), "eager transfers work again");
    }

    [Test]
    public void Ops_that_would_transfer_scalars_stay_on_the_device_under_capture()
    {
        using var x = Tensor.Randn([4, 5], DType.Float32, new Generator(4)).To(Dev);
        using var graph = CudaGraph.Capture(
            _stream,
            () =>
            {
                using var scope = new TensorScope();
                var y = Ops.Clamp(Ops.AddScalar(Ops.MulScalar(x, 2), 1), -1, 1);
                var z = Ops.Where(Ops.GtScalar(y, 0), y, Tensor.Scalar(0));
                F.LayerNorm(F.Softmax(z, 1), [5]);
                x.Fill(0.5);
            },
            warmup: 1
        );
        Assert.That(_stream.Graphs.Values.Single(), Is.Not.Empty);
    }
}
