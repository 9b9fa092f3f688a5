using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Distributed;

/// <summary>The server: one async loop per connection over a shared map with per-key waiters.</summary>
internal sealed class TcpStoreServer : IDisposable
{
    private readonly TcpListener _listener;
    private readonly StoreOptions _options;
    private readonly Dictionary<string, byte[]> _data = new();
    private readonly Dictionary<string, List<TaskCompletionSource>> _waiters = new();
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _clients = new();
    private long _bytesHeld;

    public int Port { get; }

    public TcpStoreServer(string host, int port, StoreOptions options)
    {
        _options = options;
        // An address binds that address. A name binds every interface: clients connect by the name, which on their
        // hosts resolves to an address of this one — while here it may resolve to loopback (127.0.1.1 on Debian).
        var addr =
            IPAddress.TryParse(host, out var ip) ? ip
            : host == "localhost" ? IPAddress.Loopback
            : IPAddress.Any;
        _listener = new TcpListener(addr, port);
        _listener.Start(512);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptLoop();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }
            s.NoDelay = true;
            lock (_lock)
                _clients.Add(s);
            _ = Serve(s);
        }
    }

    /// <summary>One connection, Kestrel-style: a PipeReader buffers what arrives, whole requests are parsed from it
    /// (lengths checked against the limits before anything is buffered for them), and responses go out through a
    /// PipeWriter.</summary>
    private async Task Serve(Socket socket)
    {
        using var stream = new NetworkStream(socket, ownsSocket: true);
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
        var writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
        var ephemeral = new HashSet<string>(); // this connection's ephemeral keys: gone with it
        try
        {
            if (!await Handshake(reader, writer))
                return;
            bool joined = false;
            while (!_stop.IsCancellationRequested)
            {
                var result = await reader.ReadAsync(_stop.Token);
                var buffer = result.Buffer;
                var parse = StoreRequest.TryParse(buffer, _options, out var request, out var consumed);
                if (parse == StoreRequest.Parse.Malformed)
                    return; // drop this connection
                if (parse == StoreRequest.Parse.Incomplete)
                {
                    if (result.IsCompleted)
                        return; // truncated: the client went away mid-request
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    continue;
                }
                reader.AdvanceTo(consumed);
                // The first request must say the job: a client of another job is answered once and dropped,
                // before it can read or change anything.
                if (!joined)
                {
                    if (request.Cmd != StoreProtocol.CmdJoin)
                        return;
                    string theirs = request.Key;
                    bool same = _options.JobId == null || theirs.Length == 0 || theirs == _options.JobId;
                    await writer.WriteAsync(
                        same
                            ? [StoreProtocol.StatusOk]
                            : Refusal(
                                $"this store serves job '{_options.JobId}' on port {Port}; the client is in job "
                                    + $"'{theirs}'. Two jobs cannot share a store port: give the second job another "
                                    + $"--master-port"
                            ),
                        _stop.Token
                    );
                    if (!same)
                        return;
                    joined = true;
                    continue;
                }
                if (request.Cmd == StoreProtocol.CmdSetEphemeral)
                    ephemeral.Add(request.Key);
                var resp = await Handle(request.Cmd, request.Key, request.Value, request.Value2, request.Timeout);
                if (resp == null)
                    return;
                await writer.WriteAsync(resp, _stop.Token);
            }
        }
        catch (Exception e)
            when (e
                    is IOException
                        or SocketException
                        or OperationCanceledException
                        or ObjectDisposedException
                        or EndOfStreamException
            )
        {
            // the client went away or sent garbage; only this connection ends
        }
        finally
        {
            await reader.CompleteAsync();
            await writer.CompleteAsync();
            lock (_lock)
            {
                _clients.Remove(socket);
                foreach (var key in ephemeral)
                    if (_data.Remove(key, out var gone))
                        _bytesHeld -= Encoding.UTF8.GetByteCount(key) + gone.Length;
            }
        }
    }

    private async Task<bool> Handshake(PipeReader reader, PipeWriter writer)
    {
        if (_options.Token == null)
        {
            await writer.WriteAsync(new byte[] { 0 }, _stop.Token);
            return true;
        }
        var nonce = RandomNumberGenerator.GetBytes(32);
        await writer.WriteAsync(
            new byte[] { 1 }
                .Concat(nonce)
                .ToArray(),
            _stop.Token
        );
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(TimeSpan.FromSeconds(10));
        var result = await reader.ReadAtLeastAsync(32, cts.Token);
        if (result.Buffer.Length < 32)
            return false;
        var answer = result.Buffer.Slice(0, 32).ToArray();
        reader.AdvanceTo(result.Buffer.GetPosition(32));
        bool ok = CryptographicOperations.FixedTimeEquals(
            answer,
            HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce)
        );
        await writer.WriteAsync(new byte[] { (byte)(ok ? 1 : 0) }, _stop.Token);
        return ok;
    }

    private async Task<byte[]?> Handle(byte cmd, string key, byte[] val, byte[] val2, TimeSpan timeout)
    {
        switch (cmd)
        {
            case StoreProtocol.CmdSet:
            case StoreProtocol.CmdSetEphemeral:
                lock (_lock)
                {
                    if (OverCap(key, val.Length) is { } refusal)
                        return refusal;
                    _data[key] = val;
                    Wake(key);
                }
                return [StoreProtocol.StatusOk];
            case StoreProtocol.CmdGet:
            {
                Task wait;
                lock (_lock)
                {
                    if (_data.TryGetValue(key, out var v))
                        return Bytes(v);
                    var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    if (!_waiters.TryGetValue(key, out var list))
                        _waiters[key] = list = new();
                    list.Add(tcs);
                    wait = tcs.Task;
                }
                if (await Task.WhenAny(wait, Task.Delay(timeout, _stop.Token)) != wait)
                    return [StoreProtocol.StatusTimeout];
                lock (_lock)
                    return _data.TryGetValue(key, out var v2) ? Bytes(v2) : [StoreProtocol.StatusTimeout];
            }
            case StoreProtocol.CmdAdd:
            {
                if (val.Length != 8)
                    return null;
                long now;
                lock (_lock)
                {
                    if (OverCap(key, 8) is { } refusal)
                        return refusal;
                    long cur =
                        _data.TryGetValue(key, out var v) && v.Length == 8
                            ? BinaryPrimitives.ReadInt64LittleEndian(v)
                            : 0;
                    now = cur + BinaryPrimitives.ReadInt64LittleEndian(val);
                    var nb = new byte[8];
                    BinaryPrimitives.WriteInt64LittleEndian(nb, now);
                    _data[key] = nb;
                    Wake(key);
                }
                var r = new byte[9];
                BinaryPrimitives.WriteInt64LittleEndian(r.AsSpan(1), now);
                return r;
            }
            case StoreProtocol.CmdCas:
                lock (_lock)
                {
                    bool exists = _data.TryGetValue(key, out var cur);
                    if ((!exists && val.Length == 0) || (exists && cur!.AsSpan().SequenceEqual(val)))
                    {
                        if (OverCap(key, val2.Length) is { } refusal)
                            return refusal;
                        _data[key] = val2;
                        Wake(key);
                        return Bytes(val2);
                    }
                    return Bytes(cur ?? []);
                }
            case StoreProtocol.CmdDelete:
                lock (_lock)
                {
                    bool had = _data.Remove(key, out var gone);
                    if (had)
                        _bytesHeld -= Encoding.UTF8.GetByteCount(key) + gone!.Length;
                    return [StoreProtocol.StatusOk, (byte)(had ? 1 : 0)];
                }
            default:
                return null;
        }
    }

    /// <summary>Under the lock: accounts a write of <paramref name="valueBytes"/> to <paramref name="key"/>, or returns
    /// the refusal when it would take the store past <see cref="StoreOptions.MaxTotalBytes"/>.</summary>
    private byte[]? OverCap(string key, int valueBytes)
    {
        long keyBytes = Encoding.UTF8.GetByteCount(key);
        long now = _data.TryGetValue(key, out var old) ? keyBytes + old.Length : 0;
        long after = _bytesHeld - now + keyBytes + valueBytes;
        if (after > _options.MaxTotalBytes)
            return Refusal(
                $"the store holds {_bytesHeld} bytes and this write of {keyBytes + valueBytes} would pass its "
                    + $"{_options.MaxTotalBytes}-byte cap (StoreOptions.MaxTotalBytes)"
            );
        _bytesHeld = after;
        return null;
    }

    private static byte[] Refusal(string message)
    {
        var r = Bytes(Encoding.UTF8.GetBytes(message));
        r[0] = StoreProtocol.StatusRefused;
        return r;
    }

    private static byte[] Bytes(byte[] v)
    {
        var r = new byte[5 + v.Length];
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(1), v.Length);
        v.CopyTo(r, 5);
        return r;
    }

    private void Wake(string key)
    {
        if (_waiters.Remove(key, out var list))
            foreach (var t in list)
                t.TrySetResult();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_lock)
            foreach (var c in _clients)
                c.Dispose();
    }
}
