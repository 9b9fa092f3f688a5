namespace HpcEngine.Cli.Commands;

/// <summary>Follows a run's event file (<c>train --events</c>) as it grows, handing each whole line's event to a
/// callback from a background thread; <see cref="Finish"/> reads what is left once the run has ended.</summary>
internal sealed class EventFollower : IDisposable
{
    private readonly string _path;
    private readonly Action<object?> _onEvent;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly Lock _gate = new();
    private long _offset;
    private string _partial = "";

    public EventFollower(string path, Action<object?> onEvent)
    {
        _path = path;
        _onEvent = onEvent;
        _thread = new Thread(Loop) { IsBackground = true, Name = "hpc-events" };
        _thread.Start();
    }

    private void Loop()
    {
        while (!_stop.Token.WaitHandle.WaitOne(500))
            Poll();
    }

    private void Poll()
    {
        lock (_gate)
        {
            if (!File.Exists(_path))
                return;
            using var fs = new FileStream(
                _path,
                FileMode.Open,
                FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete
            );
            if (fs.Length <= _offset)
                return;
            fs.Seek(_offset, SeekOrigin.Begin);
            using var reader = new StreamReader(fs);
            string text = _partial + reader.ReadToEnd();
            _offset = fs.Length;
            int last = text.LastIndexOf('\n');
            _partial = last < 0 ? text : text[(last + 1)..];
            if (last < 0)
                return;
            foreach (var line in text[..last].Split('\n', StringSplitOptions.RemoveEmptyEntries))
                _onEvent(Training.JsonLinesObserver.Read(line));
        }
    }

    /// <summary>Stops following and delivers the lines not yet read.</summary>
    public void Finish()
    {
        _stop.Cancel();
        _thread.Join();
        Poll();
    }

    public void Dispose()
    {
        if (!_stop.IsCancellationRequested)
            Finish();
        _stop.Dispose();
    }
}
