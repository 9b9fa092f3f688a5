using BenchmarkDotNet.Attributes;
using HpcEngine.Serving;
using HpcEngine.Training;

namespace HpcEngine.Bench;

/// <summary>What `train --metrics-port` adds to each training step: the events one step raises (compute, exchange,
/// step) through the Prometheus observer and its dashboard history. Compare with a step's time (`hpcengine bench
/// step`). <c>--filter '*Monitoring*'</c>.</summary>
public class MonitoringBenchmarks
{
    private readonly TrainingMetrics _metrics = new(0);
    private long _step;

    [Benchmark]
    public void OneStepOfEvents()
    {
        long s = ++_step;
        _metrics.OnComputed(new ComputeEvent(s, 0, 0.001));
        _metrics.OnStrategyStep(new StrategyStepEvent(s, 0, 0.0005, 0, 0.0004, 0.0001));
        _metrics.OnStep(new StepEvent(s, 1, (int)(s % 469) + 1, 0.5));
    }
}
