namespace HpcEngine.Training;

/// <summary>A run's observers, with the rule of who hears what: rank 0's hear of messages, progress, evaluations and
/// epochs; every rank's hear of steps, compute, strategy steps, spans and the end.</summary>
internal sealed class RunObservers(IReadOnlyList<ITrainingObserver> observers, Func<bool> lead)
{
    /// <summary>Tells rank 0's observers (in an elastic run, whichever member is rank 0 now).</summary>
    public void Lead(Action<ITrainingObserver> tell)
    {
        if (lead())
            All(tell);
    }

    /// <summary>Tells this rank's observers.</summary>
    public void All(Action<ITrainingObserver> tell)
    {
        foreach (var o in observers)
            tell(o);
    }

    public void Message(string message) => Lead(o => o.OnMessage(message));

    /// <summary>Tells every observer the run ended; the first observer's failure is rethrown after all were told (a
    /// trace is still written when the line observer fails).</summary>
    public void Finished(Exception? error)
    {
        Exception? failed = null;
        foreach (var o in observers)
        {
            try
            {
                o.OnFinished(error);
            }
            catch (Exception e)
            {
                failed ??= e;
            }
        }
        if (failed != null && error == null)
            throw failed;
    }
}
