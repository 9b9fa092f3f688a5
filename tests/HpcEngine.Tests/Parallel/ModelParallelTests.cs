using HpcEngine.NN;
using HpcEngine.Parallel;
using HpcEngine.Parallel.ModelParallel;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Parallel;

/// <summary>Tensor and pipeline parallelism against single-process training of the same model and batch.</summary>
[TestFixture]
public class ModelParallelTests
{
    private const ulong InitSeed = 7;

    private static (Tensor X, Tensor Y) Batch(int size, ulong seed)
    {
        var x = Tensor.Randn([size, 1, 28, 28], DType.Float32, new Generator(seed)).DetachFromScope();
        var y = Tensor.Randint(0, 10, [size], generator: new Generator(seed + 1)).DetachFromScope();
        return (x, y);
    }

    /// <summary>One process: loss, then the gradients by the model's parameter names.</summary>
    private static (double Loss, Dictionary<string, float[]> Grads) SingleProcess(Tensor x, Tensor y)
    {
        using var model = Models.Create("mlp-wide", new Generator(InitSeed));
        using var scope = new TensorScope();
        var loss = F.CrossEntropy(model.Forward(x), y);
        loss.Backward();
        return (
            loss.Item(),
            model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Grad!.ToArray<float>())
        );
    }

    private static void AssertGradsClose(Dictionary<string, float[]> got, Dictionary<string, float[]> want, string who)
    {
        Assert.That(got.Keys, Is.EquivalentTo(want.Keys), who);
        foreach (var (k, w) in want)
        {
            double scale = w.Max(v => Math.Abs(v)) + 1e-12;
            for (int i = 0; i < w.Length; i++)
                Assert.That(got[k][i], Is.EqualTo(w[i]).Within(2e-5 * scale + 1e-7), $"{who}: {k}[{i}]");
        }
    }

    [TestCase(2)]
    [TestCase(4)]
    public void Tensor_parallel_mlp_wide_gives_the_single_process_loss_and_gradients(int n)
    {
        var (x, y) = Batch(8, 11);
        using (x)
        using (y)
        {
            var (wantLoss, wantGrads) = SingleProcess(x, y);
            var losses = new double[n];
            var grads = new Dictionary<string, float[]>[n];
            Ranks.Run(n, tp =>
            {
                using var model = TensorParallel.MlpWide(tp, new Generator(InitSeed));
                using var scope = new TensorScope();
                var loss = F.CrossEntropy(model.Forward(x), y);
                loss.Backward();
                losses[tp.Rank] = loss.Item();
                grads[tp.Rank] = TensorParallel
                    .FullGradients(model)
                    .ToDictionary(
                        kv => kv.Key,
                        kv =>
                        {
                            using (kv.Value)
                                return kv.Value.ToArray<float>();
                        }
                    );
                Assert.That(
                    ((ColumnParallelLinear)model.Layers[1]).Weight.ShapeArray,
                    Is.EqualTo(new[] { 1024 / n, 784 }),
                    "each rank holds 1/n of the rows"
                );
            });
            for (int r = 0; r < n; r++)
            {
                Assert.That(losses[r], Is.EqualTo(wantLoss).Within(1e-5), $"rank {r} loss");
                AssertGradsClose(grads[r], wantGrads, $"tp{n} rank {r}");
            }
        }
    }

    [Test]
    public void A_full_state_dict_loads_into_shards_and_gathers_back_unchanged()
    {
        using var reference = Models.Create("mlp-wide", new Generator(99));
        var full = reference.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var back = new Dictionary<string, float[]>[2];
        Ranks.Run(2, tp =>
        {
            using var model = TensorParallel.MlpWide(tp, new Generator(1));
            TensorParallel.LoadFullStateDict(model, full);
            back[tp.Rank] = TensorParallel
                .FullStateDict(model)
                .ToDictionary(
                    kv => kv.Key,
                    kv =>
                    {
                        using (kv.Value)
                            return kv.Value.ToArray<float>();
                    }
                );
            Assert.Throws<KeyNotFoundException>(() =>
                TensorParallel.LoadFullStateDict(model, new Dictionary<string, Tensor>())
            );
        });
        foreach (var (k, t) in full)
            Assert.That(back[1][k], Is.EqualTo(t.ToArray<float>()), k);
    }

    [TestCase(2, PipelineSchedule.GPipe)]
    [TestCase(2, PipelineSchedule.OneFOneB)]
    [TestCase(4, PipelineSchedule.GPipe)]
    [TestCase(4, PipelineSchedule.OneFOneB)]
    public void Pipeline_stages_give_the_single_process_loss_and_gradients(int stages, PipelineSchedule schedule)
    {
        const int microBatches = 4;
        var (x, y) = Batch(8, 21);
        using (x)
        using (y)
        {
            var (wantLoss, wantGrads) = SingleProcess(x, y);
            using var names = Models.Create("mlp-wide", new Generator(InitSeed));
            var order = names.NamedParameters().Select(p => p.Name).ToArray();
            var losses = new double[stages];
            var grads = new List<float[]>[stages];
            var stats = new PipelineStepStats[stages];
            Ranks.Run(stages, pp =>
            {
                using var stage = new PipelineStage((Sequential)Models.Create("mlp-wide", new Generator(InitSeed)), pp);
                using var scope = new TensorScope();
                stats[pp.Rank] = stage.Step(stage.IsFirst ? x : null, stage.IsLast ? y : null, microBatches, schedule);
                losses[pp.Rank] = stats[pp.Rank].Loss;
                grads[pp.Rank] = stage.Parameters().Select(p => p.Grad!.ToArray<float>()).ToList();
            });
            Assert.That(losses[stages - 1], Is.EqualTo(wantLoss).Within(1e-5));
            var got = grads.SelectMany(g => g).Select((g, i) => (order[i], g)).ToDictionary(p => p.Item1, p => p.g);
            AssertGradsClose(got, wantGrads, $"pp{stages} {schedule}");
            for (int s = 0; s < stages; s++)
            {
                int bound = schedule == PipelineSchedule.GPipe ? microBatches : Math.Min(stages - s, microBatches);
                Assert.That(
                    stats[s].MaxInFlight,
                    Is.EqualTo(bound),
                    $"stage {s}: micro-batches of activations alive at once"
                );
                Assert.That(stats[s].BubbleFraction, Is.InRange(0.0, 1.0));
            }
            Assert.That(stats[0].BytesSent, Is.GreaterThan(0));
        }
    }

    [Test]
    public void A_bad_partition_or_micro_batch_count_is_refused()
    {
        Ranks.Run(2, pp =>
        {
            Assert.Throws<ArgumentException>(() =>
                new PipelineStage((Sequential)Models.Create("mlp-wide"), pp, [6, 0])
            );
            using var stage = new PipelineStage((Sequential)Models.Create("mlp-wide"), pp, [2, 4]);
            Assert.That(stage.Module.Layers, Has.Count.EqualTo(pp.Rank == 0 ? 2 : 4));
            using var x = Tensor.Zeros([6, 1, 28, 28]);
            using var y = Tensor.Zeros([6], DType.Int64);
            if (pp.Rank == 0)
                Assert.Throws<ArgumentException>(() => stage.Step(x, null, 4, PipelineSchedule.GPipe));
            else
                Assert.Throws<ArgumentException>(() => stage.Step(null, y, 4, PipelineSchedule.GPipe));
        });
        Assert.That(PipelineStepStats.TheoreticalBubble(4, 8), Is.EqualTo(3.0 / 11).Within(1e-12));
    }

    [Test]
    public void Data_parallel_times_tensor_parallel_equals_single_process_on_the_global_batch()
    {
        var (x, y) = Batch(8, 31);
        using (x)
        using (y)
        {
            var (wantLoss, wantGrads) = SingleProcess(x, y);
            var grads = new Dictionary<string, float[]>[4];
            Ranks.Run(
                4,
                world =>
                {
                    using var mesh = DeviceMesh.Create(world, dataParallel: 2, pipelineParallel: 1, tensorParallel: 2);
                    Assert.That(mesh.Data.Size * mesh.Tensor.Size, Is.EqualTo(4));
                    using var model = TensorParallel.MlpWide(mesh.Tensor, new Generator(InitSeed));
                    using var ddp = new DistributedDataParallel(model, mesh.Data);
                    int d = mesh.Coordinates.Data;
                    using (var scope = new TensorScope())
                    {
                        using var xs = x.Narrow(0, d * 4, 4);
                        using var ys = y.Narrow(0, d * 4, 4);
                        F.CrossEntropy(ddp.Forward(xs), ys).Backward();
                    }
                    ddp.Synchronize();
                    grads[world.Rank] = TensorParallel
                        .FullGradients(model)
                        .ToDictionary(
                            kv => kv.Key,
                            kv =>
                            {
                                using (kv.Value)
                                    return kv.Value.ToArray<float>();
                            }
                        );
                },
                timeoutSeconds: 120
            );
            for (int r = 0; r < 4; r++)
                AssertGradsClose(grads[r], wantGrads, $"dp2×tp2 rank {r}");
        }
    }

    [TestCase(2)]
    [TestCase(4)]
    public void Tensor_parallel_gpt_mini_gives_the_single_process_loss_and_gradients(int n)
    {
        var cfg = new GptMiniConfig(Vocab: 32, Context: 8, Dim: 16, Heads: 4, Layers: 2);
        using var ids = Tensor.Randint(0, 32, [2, 8], generator: new Generator(41));
        using var targets = Tensor.Randint(0, 32, [16], generator: new Generator(42));
        double wantLoss;
        Dictionary<string, float[]> wantGrads;
        using (var single = new GptMini(cfg, new Generator(3)))
        using (var scope = new TensorScope())
        {
            var logits = single.Forward(ids).Reshape(16, 32);
            var loss = F.CrossEntropy(logits, targets);
            loss.Backward();
            wantLoss = loss.Item();
            wantGrads = single.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Grad!.ToArray<float>());
        }
        var losses = new double[n];
        var grads = new Dictionary<string, float[]>[n];
        Ranks.Run(n, tp =>
        {
            using var model = new ParallelGptMini(cfg, tp, new Generator(3));
            using var scope = new TensorScope();
            var logits = model.Forward(ids);
            Assert.That(
                logits.ShapeArray,
                Is.EqualTo(new[] { 2, 8, 32 / n }),
                "each rank holds its slice of the vocabulary"
            );
            var loss = VocabParallelCrossEntropy.Compute(logits.Reshape(16, 32 / n), targets, tp);
            loss.Backward();
            losses[tp.Rank] = loss.Item();
            grads[tp.Rank] = TensorParallel
                .FullGradients(model)
                .ToDictionary(
                    kv => kv.Key,
                    kv =>
                    {
                        using (kv.Value)
                            return kv.Value.ToArray<float>();
                    }
                );
        });
        for (int r = 0; r < n; r++)
        {
            Assert.That(losses[r], Is.EqualTo(wantLoss).Within(1e-5), $"rank {r} loss");
            AssertGradsClose(grads[r], wantGrads, $"gpt-mini tp{n} rank {r}");
        }
    }

    [Test]
    public void Vocab_parallel_cross_entropy_matches_the_full_one_with_its_gradient()
    {
        using var logits = Tensor.Randn([5, 12], DType.Float32, new Generator(8));
        using var targets = Tensor.FromArray(new long[] { 0, 11, 5, 6, 3 });
        var full = logits.Detach().Clone().DetachFromScope().RequiresGrad_();
        double want;
        using (var scope = new TensorScope())
        {
            var l = F.CrossEntropy(full, targets);
            l.Backward();
            want = l.Item();
        }
        var wantGrad = full.Grad!.ToArray<float>();
        Ranks.Run(3, tp =>
        {
            using var shard = logits.Narrow(1, tp.Rank * 4, 4).Contiguous().DetachFromScope().RequiresGrad_();
            using var scope = new TensorScope();
            var loss = VocabParallelCrossEntropy.Compute(shard, targets, tp);
            loss.Backward();
            Assert.That(loss.Item(), Is.EqualTo(want).Within(1e-6));
            var g = shard.Grad!.ToArray<float>();
            for (int i = 0; i < 5; i++)
            for (int j = 0; j < 4; j++)
                Assert.That(g[i * 4 + j], Is.EqualTo(wantGrad[i * 12 + tp.Rank * 4 + j]).Within(1e-6));
        });
        full.Dispose();
    }

    [Test]
    public void A_sharded_gpt_mini_saves_one_full_file_that_the_single_process_model_loads()
    {
        var cfg = new GptMiniConfig(Vocab: 32, Context: 8, Dim: 16, Heads: 4, Layers: 1);
        string path = Path.Combine(TestSupport.TempDir("hpc-tpsave-"), "full.safetensors");
        using var ids = Tensor.Randint(0, 32, [1, 8], generator: new Generator(5));
        var shardedLogits = new float[2][];
        Ranks.Run(2, tp =>
        {
            using var model = new ParallelGptMini(cfg, tp, new Generator(17));
            TensorParallel.SaveFull(model, tp, path);
            using var scope = new TensorScope();
            using var noGrad = HpcEngine.Autograd.GradMode.NoGrad();
            shardedLogits[tp.Rank] = model.Forward(ids).ToArray<float>();
        });
        using var single = new GptMini(cfg, new Generator(1234));
        using (var f = HpcEngine.IO.Safetensors.Open(path))
            single.LoadStateDict(f.Names.ToDictionary(n => n, n => f.Read(n)));
        using var scope2 = new TensorScope();
        using var noGrad2 = HpcEngine.Autograd.GradMode.NoGrad();
        var full = single.Forward(ids).ToArray<float>(); // [1, 8, 32]; rank r holds vocabulary columns [16r, 16r + 16)
        for (int pos = 0; pos < 8; pos++)
        for (int r = 0; r < 2; r++)
        for (int j = 0; j < 16; j++)
            Assert.That(shardedLogits[r][pos * 16 + j], Is.EqualTo(full[pos * 32 + r * 16 + j]).Within(1e-4));
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    [TestCase(2, PipelineSchedule.GPipe)]
    [TestCase(4, PipelineSchedule.OneFOneB)]
    public void Pipelined_gpt_mini_gives_the_single_process_loss_and_gradients(int stages, PipelineSchedule schedule)
    {
        var cfg = new GptMiniConfig(Vocab: 32, Context: 8, Dim: 16, Heads: 2, Layers: 3);
        using var ids = Tensor.Randint(0, 32, [4, 8], generator: new Generator(51));
        using var targets = Tensor.Randint(0, 32, [4, 8], generator: new Generator(52));
        Tensor Loss(Tensor logits, Tensor t)
        {
            using var flat = logits.Reshape(-1, 32);
            using var ft = t.Reshape(-1);
            return F.CrossEntropy(flat, ft);
        }
        double wantLoss;
        List<float[]> want;
        using (var single = new GptMini(cfg, new Generator(9)))
        using (var scope = new TensorScope())
        {
            var loss = Loss(single.Forward(ids), targets);
            loss.Backward();
            wantLoss = loss.Item();
            want = single.Parameters().Select(p => p.Grad!.ToArray<float>()).ToList();
        }
        var losses = new double[stages];
        var grads = new List<float[]>[stages];
        Ranks.Run(stages, pp =>
        {
            // 6 layers: embeddings, 3 blocks, final norm, head.
            using var stage = new PipelineStage(GptMini.CreateSequential(cfg, new Generator(9)), pp);
            using var scope = new TensorScope();
            losses[pp.Rank] = stage
                .Step(stage.IsFirst ? ids : null, stage.IsLast ? targets : null, 2, schedule, Loss)
                .Loss;
            grads[pp.Rank] = stage.Parameters().Select(p => p.Grad!.ToArray<float>()).ToList();
        });
        Assert.That(losses[stages - 1], Is.EqualTo(wantLoss).Within(1e-5));
        var got = grads.SelectMany(g => g).ToList();
        Assert.That(got, Has.Count.EqualTo(want.Count));
        for (int k = 0; k < want.Count; k++)
        {
            double scale = want[k].Max(v => Math.Abs(v)) + 1e-12;
            Assert.That(got[k], Is.EqualTo(want[k]).Within(2e-5 * scale + 1e-7), $"parameter {k}");
        }
    }

    [Test]
    public void Data_parallel_times_pipeline_parallel_equals_single_process_on_the_global_batch()
    {
        var (x, y) = Batch(8, 61);
        using (x)
        using (y)
        {
            var (_, wantGrads) = SingleProcess(x, y);
            using var names = Models.Create("mlp-wide", new Generator(InitSeed));
            var order = names.NamedParameters().Select(p => p.Name).ToArray();
            var grads = new List<float[]>[4];
            var coords = new (int Data, int Pipeline, int Tensor)[4];
            Ranks.Run(
                4,
                world =>
                {
                    using var mesh = DeviceMesh.Create(world, dataParallel: 2, pipelineParallel: 2, tensorParallel: 1);
                    coords[world.Rank] = mesh.Coordinates;
                    using var stage = new PipelineStage(
                        (Sequential)Models.Create("mlp-wide", new Generator(InitSeed)),
                        mesh.Pipeline
                    );
                    int d = mesh.Coordinates.Data;
                    using (var scope = new TensorScope())
                    {
                        using var xs = x.Narrow(0, d * 4, 4);
                        using var ys = y.Narrow(0, d * 4, 4);
                        stage.Step(stage.IsFirst ? xs : null, stage.IsLast ? ys : null, 2, PipelineSchedule.OneFOneB);
                    }
                    // Average each stage's gradients over its data-parallel replicas.
                    foreach (var p in stage.Parameters())
                        mesh.Data.AllReduce(
                                p.Grad!,
                                new HpcEngine.Distributed.AllReduceOptions { Op = HpcEngine.Distributed.ReduceOp.Avg }
                            )
                            .Wait();
                    grads[world.Rank] = stage.Parameters().Select(p => p.Grad!.ToArray<float>()).ToList();
                },
                timeoutSeconds: 120
            );
            for (int d = 0; d < 2; d++)
            {
                var stagesOfReplica = Enumerable
                    .Range(0, 4)
                    .Where(r => coords[r].Data == d)
                    .OrderBy(r => coords[r].Pipeline);
                var got = stagesOfReplica
                    .SelectMany(r => grads[r])
                    .Select((g, i) => (order[i], g))
                    .ToDictionary(p => p.Item1, p => p.g);
                AssertGradsClose(got, wantGrads, $"dp2×pp2 replica {d}");
            }
        }
    }

    [Test]
    public void Pipeline_stages_made_of_tensor_parallel_layers_equal_single_process_training()
    {
        // pp2 × tp2: stage 0 = [flatten, column-parallel 784→1024, relu], stage 1 = [row-parallel 1024→1024, relu,
        // head]. The split activation between the stages travels shard to shard (tp rank t of stage 0 to tp rank t of
        // stage 1).
        var (x, y) = Batch(8, 71);
        using (x)
        using (y)
        {
            var (wantLoss, wantGrads) = SingleProcess(x, y);
            using var names = Models.Create("mlp-wide", new Generator(InitSeed));
            var order = names.NamedParameters().Select(p => p.Name).ToArray();
            var full = new List<float[]>[4];
            var coords = new (int Data, int Pipeline, int Tensor)[4];
            var losses = new double[4];
            Ranks.Run(
                4,
                world =>
                {
                    using var mesh = DeviceMesh.Create(world, dataParallel: 1, pipelineParallel: 2, tensorParallel: 2);
                    coords[world.Rank] = mesh.Coordinates;
                    using var stage = new PipelineStage(
                        TensorParallel.MlpWide(mesh.Tensor, new Generator(InitSeed)),
                        mesh.Pipeline,
                        [3, 3]
                    );
                    using (var scope = new TensorScope())
                        losses[world.Rank] = stage
                            .Step(stage.IsFirst ? x : null, stage.IsLast ? y : null, 4, PipelineSchedule.OneFOneB)
                            .Loss;
                    full[world.Rank] = TensorParallel
                        .FullGradients(stage.Module)
                        .Values.Select(t =>
                        {
                            using (t)
                                return t.ToArray<float>();
                        })
                        .ToList();
                },
                timeoutSeconds: 120
            );
            int last = Enumerable.Range(0, 4).First(r => coords[r] == (0, 1, 0));
            Assert.That(losses[last], Is.EqualTo(wantLoss).Within(1e-5));
            int first = Enumerable.Range(0, 4).First(r => coords[r] == (0, 0, 0));
            var got = full[first]
                .Concat(full[last])
                .Select((g, i) => (order[i], g))
                .ToDictionary(p => p.Item1, p => p.g);
            AssertGradsClose(got, wantGrads, "pp2×tp2");
        }
    }
}
