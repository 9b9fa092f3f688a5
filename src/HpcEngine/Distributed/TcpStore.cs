using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Distributed;

/// <summary>The store served by rank 0 and its client. Wire format (little-endian): a request is
/// <c>[u8 cmd][u32 keyLen][key][u32 valLen][val][u32 val2Len][val2][i64 timeoutMs]</c>; the response starts with a
/// status byte (0 ok, 1 timeout) followed by the command's result. Every length is checked against the limits
/// <em>before</em> anything is allocated; a malformed request closes that connection only. With a token, the server
/// first sends a 32-byte nonce and expects HMAC-SHA256(token, nonce) back; a wrong or missing answer is refused before
/// any state is read or changed.</summary>
public sealed class TcpStore : IStore
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly StoreOptions _options;
    private readonly TcpStoreServer? _server;
    private readonly string _endpoint;

    private TcpStore(Socket socket, StoreOptions options, TcpStoreServer? server, string endpoint)
    {
        _endpoint = endpoint;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _options = options;
        _server = server;
    }

    /// <summary>The port the server listens on (rank 0 only).</summary>
    public int? ServerPort => _server?.Port;

    /// <summary>Rank 0 calls with isServer: starts the server on host:port (port 0 picks one) and connects to it.
    /// Others connect, retrying until <paramref name="connectTimeout"/>.</summary>
    public static TcpStore Create(
        string host,
        int port,
        bool isServer,
        StoreOptions? options = null,
        TimeSpan? connectTimeout = null
    )
    {
        options ??= new StoreOptions();
        TcpStoreServer? server = null;
        if (isServer)
        {
            try
            {
                server = new TcpStoreServer(host, port, options);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                throw new InvalidOperationException(
                    $"the store port {host}:{port} is in use (another job's store, or another program): choose another "
                        + $"--master-port",
                    e
                );
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
            {
                throw new InvalidOperationException(
                    $"the store cannot listen on {host}:{port}: {host} is not an address of this host; MASTER_ADDR "
                        + $"must be node 0's address (run the store's node with --node-rank 0)",
                    e
                );
            }
            port = server.Port;
        }
        var deadline = DateTime.UtcNow + (connectTimeout ?? TimeSpan.FromSeconds(60));
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                s.Connect(host, port);
                var store = new TcpStore(s, options, server, $"{host}:{port}");
                try
                {
                    store.Authenticate();
                    store.Join();
                }
                catch
                {
                    store._stream.Dispose();
                    throw;
                }
                return store;
            }
            catch (SocketException e)
            {
                last = e;
                s.Dispose();
                Thread.Sleep(50);
            }
            catch
            {
                s.Dispose();
                server?.Dispose();
                throw;
            }
        }
        server?.Dispose();
        throw new TimeoutException(
            $"could not connect to the store at {host}:{port} within "
                + $"{(connectTimeout ?? TimeSpan.FromSeconds(60)).TotalSeconds:F0}s: {last?.Message}"
        );
    }

    private void Authenticate()
    {
        var flag = new byte[1];
        _stream.ReadExactly(flag);
        if (flag[0] == 0)
        {
            if (_options.Token != null)
                throw new UnauthorizedAccessException(
                    $"the store at {_endpoint} does not authenticate, but this rank has a token (HPCENGINE_TOKEN): it "
                        + $"is not this job's store (another job, or a stranger, on that port); refusing it"
                );
            return;
        }
        var nonce = new byte[32];
        _stream.ReadExactly(nonce);
        if (_options.Token == null)
            throw new UnauthorizedAccessException(
                $"the store at {_endpoint} requires a token (set HPCENGINE_TOKEN to the job's shared secret; hpcengine "
                    + $"launch hands its workers one)"
            );
        _stream.Write(HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce));
        var verdict = new byte[1];
        if (_stream.ReadAtLeast(verdict, 1, throwOnEndOfStream: false) < 1 || verdict[0] != 1)
            throw new UnauthorizedAccessException(
                $"the store at {_endpoint} refused this rank's token: it serves another job, or the token differs"
            );
    }

    /// <summary>Says which job this client belongs to; a server of another job refuses (see <see
    /// cref="StoreOptions.JobId"/>).</summary>
    private void Join() => Call(StoreProtocol.CmdJoin, _options.JobId ?? "", [], [], TimeSpan.FromSeconds(30), _ => 0);

    /// <inheritdoc/>
    public void Set(string key, byte[] value, TimeSpan? timeout = null) =>
        Call(StoreProtocol.CmdSet, key, value, [], timeout, _ => 0);

    /// <inheritdoc/>
    public void SetEphemeral(string key, byte[] value, TimeSpan? timeout = null) =>
        Call(StoreProtocol.CmdSetEphemeral, key, value, [], timeout, _ => 0);

    /// <inheritdoc/>
    public byte[] Get(string key, TimeSpan? timeout = null) =>
        Call(StoreProtocol.CmdGet, key, [], [], timeout, ReadBytes);

    /// <inheritdoc/>
    public long Add(string key, long amount, TimeSpan? timeout = null)
    {
        var v = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(v, amount);
        return Call(StoreProtocol.CmdAdd, key, v, [], timeout, s =>
            BinaryPrimitives.ReadInt64LittleEndian(ReadExactly(s, 8))
        );
    }

    /// <inheritdoc/>
    public byte[] CompareSet(string key, byte[] expected, byte[] desired, TimeSpan? timeout = null) =>
        Call(StoreProtocol.CmdCas, key, expected, desired, timeout, ReadBytes);

    /// <inheritdoc/>
    public bool Delete(string key, TimeSpan? timeout = null) =>
        Call(StoreProtocol.CmdDelete, key, [], [], timeout, s => ReadExactly(s, 1)[0] == 1);

    /// <inheritdoc/>
    public void Wait(IEnumerable<string> keys, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var deadline = DateTime.UtcNow + (timeout ?? _options.DefaultTimeout);
        foreach (var k in keys)
        {
            var left = deadline - DateTime.UtcNow;
            Get(k, left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
        }
    }

    private static byte[] ReadBytes(Stream s)
    {
        int len = BinaryPrimitives.ReadInt32LittleEndian(ReadExactly(s, 4));
        return ReadExactly(s, len);
    }

    private static byte[] ReadExactly(Stream s, int n)
    {
        var b = new byte[n];
        s.ReadExactly(b);
        return b;
    }

    private T Call<T>(byte cmd, string key, byte[] val, byte[] val2, TimeSpan? timeout, Func<Stream, T> read)
    {
        ArgumentNullException.ThrowIfNull(key);
        var k = Encoding.UTF8.GetBytes(key);
        if (k.Length > _options.MaxKeyBytes)
            throw new ArgumentException(
                $"store key of {k.Length} bytes exceeds the {_options.MaxKeyBytes}-byte limit",
                nameof(key)
            );
        if (val.Length > _options.MaxValueBytes || val2.Length > _options.MaxValueBytes)
            throw new ArgumentException($"store value exceeds the {_options.MaxValueBytes}-byte limit");
        var t = timeout ?? _options.DefaultTimeout;
        var req = new byte[1 + 4 + k.Length + 4 + val.Length + 4 + val2.Length + 8];
        int o = 0;
        req[o++] = cmd;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), k.Length);
        o += 4;
        k.CopyTo(req, o);
        o += k.Length;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), val.Length);
        o += 4;
        val.CopyTo(req, o);
        o += val.Length;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), val2.Length);
        o += 4;
        val2.CopyTo(req, o);
        o += val2.Length;
        BinaryPrimitives.WriteInt64LittleEndian(req.AsSpan(o), (long)t.TotalMilliseconds);
        if (!_gate.Wait(t))
            throw new TimeoutException($"store {CmdName(cmd)} '{key}': the client is busy with another call");
        try
        {
            // The server answers a timed-out wait with a status, so the connection stays in step; the socket timeout
            // is only the backstop for a dead server.
            _socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, t.TotalMilliseconds + 5000);
            _stream.Write(req);
            var status = ReadExactly(_stream, 1)[0];
            if (status == StoreProtocol.StatusTimeout)
                throw new TimeoutException($"store {CmdName(cmd)} '{key}' timed out after {t.TotalSeconds:F1}s");
            if (status == StoreProtocol.StatusRefused)
                throw new InvalidOperationException(
                    $"the store at {_endpoint} refused {CmdName(cmd)} '{key}': "
                        + $"{Encoding.UTF8.GetString(ReadBytes(_stream))}"
                );
            if (status != StoreProtocol.StatusOk)
                throw new IOException($"store {CmdName(cmd)} '{key}': bad response status {status}");
            return read(_stream);
        }
        catch (IOException e)
            when (e.InnerException is SocketException se && se.SocketErrorCode == SocketError.TimedOut)
        {
            throw new TimeoutException($"store {CmdName(cmd)} '{key}': no answer from the store server", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string CmdName(byte c) =>
        c switch
        {
            StoreProtocol.CmdSet => "set",
            StoreProtocol.CmdSetEphemeral => "set_ephemeral",
            StoreProtocol.CmdGet => "get",
            StoreProtocol.CmdAdd => "add",
            StoreProtocol.CmdCas => "compare_set",
            StoreProtocol.CmdDelete => "delete",
            StoreProtocol.CmdJoin => "join",
            _ => "?",
        };

    /// <inheritdoc/>
    public void Dispose()
    {
        _stream.Dispose();
        _gate.Dispose();
        _server?.Dispose();
    }
}
