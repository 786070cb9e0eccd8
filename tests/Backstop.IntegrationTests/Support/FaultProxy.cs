using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Backstop.IntegrationTests.Support;

/// <summary>What the proxy does once its byte budget in one direction is spent.</summary>
public enum ProxyFault
{
    /// <summary>Close every connection and stop listening: the server went away mid-transfer.</summary>
    Vanish,

    /// <summary>Stop forwarding but keep every connection open: the server hangs.</summary>
    Hang,

    /// <summary>The bytes that cross the budget are lost on the way, everything after them goes through: a stream with a hole.</summary>
    Drop,

    /// <summary>One byte at the budget arrives flipped, everything else as sent: damage no TCP checksum caught.</summary>
    Corrupt,

    /// <summary>The connections of the moment are cut cleanly (FIN, as when the server closes), new ones go through.</summary>
    Truncate,

    /// <summary>The connections of the moment are reset (RST), new ones go through: a dropped NAT entry, a router restart.</summary>
    ResetOnce,
}

/// <summary>
/// A TCP proxy on a free loopback port in front of a real server that injects one fault: after
/// <c>budget</c> bytes have gone from the server to the client (<see cref="Direction.Down"/>) or from the client
/// to the server (<see cref="Direction.Up"/>), summed over all connections, it vanishes or hangs. Until then
/// it forwards faithfully, so the fault lands in the middle of a real protocol exchange. Runs on the thread
/// pool (never on the test's synchronization context).
/// </summary>
public sealed class FaultProxy : IDisposable
{
    public enum Direction
    {
        Down,
        Up,
    }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly int _upstreamPort;
    private readonly Direction _direction;
    private readonly ProxyFault _fault;
    private readonly List<Socket> _clients = [];
    private readonly List<Socket> _upstreams = [];
    private long _budget;
    private long _forwarded;
    private int _tripped;
    private volatile bool _partitioned;
    private readonly List<string>? _requests;

    public FaultProxy(int upstreamPort, long budget, Direction direction = Direction.Down, ProxyFault fault = ProxyFault.Vanish, bool recordHttp = false)
    {
        _requests = recordHttp ? [] : null;
        _upstreamPort = upstreamPort;
        _budget = budget;
        _direction = direction;
        _fault = fault;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>
    /// How long each byte takes through the proxy, both ways: a far or slow link. Chunks are delivered at the time they
    /// arrived plus the latency, in order, so a round trip takes twice the latency and bandwidth stays as it was.
    /// </summary>
    public TimeSpan Latency { get; set; }

    /// <summary>Bytes forwarded so far in the metered direction (with a budget never spent, the proxy only counts).</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>The request line of every HTTP/1.1 request the client sent through (with <c>recordHttp</c>), in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests ?? throw new InvalidOperationException("the proxy was made without recordHttp"))
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>True once the fault has happened.</summary>
    public bool Tripped => Volatile.Read(ref _tripped) == 1;

    /// <summary>
    /// A network partition: the server side of every connection is reset (what the server concludes once its keepalives
    /// go unanswered), the client side stays open and silent (what the client sees: nothing), and new connections are
    /// accepted and never answered, until <see cref="Heal"/>.
    /// </summary>
    public void Partition()
    {
        _partitioned = true;
        lock (_sockets)
        {
            foreach (var s in _upstreams)
            {
                Reset(s);
            }

            _upstreams.Clear();
        }
    }

    /// <summary>The partition ends: the connections cut by it are reset on the client side too (as its own timeouts would), new ones go through.</summary>
    public void Heal()
    {
        lock (_sockets)
        {
            foreach (var s in _clients)
            {
                Reset(s);
            }

            _clients.Clear();
        }

        _partitioned = false;
    }

    private static void Reset(Socket s)
    {
        try
        {
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            if (_partitioned)
            {
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _clients.Add(client); // accepted, never answered
                }

                continue;
            }

            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, _upstreamPort, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                client.Dispose();
                upstream.Dispose();
                continue;
            }

            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(upstream);
                _clients.Add(client);
                _upstreams.Add(upstream);
            }

            var heads = _requests is null ? null : new HttpRequestHeads(_requests);
            _ = Task.Run(() => PumpAsync(upstream, client, _direction == Direction.Down));
            _ = Task.Run(() => PumpAsync(client, upstream, _direction == Direction.Up, heads));
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool metered, HttpRequestHeads? heads = null)
    {
        var buffer = new byte[16384];
        System.Threading.Channels.Channel<(DateTime Due, byte[] Bytes)>? delayed = null;
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    if (delayed is not null)
                    {
                        delayed.Writer.TryComplete(); // the sender shuts the socket once the last chunk is delivered
                        return;
                    }

                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                var allowed = n;
                if (metered)
                {
                    var left = Interlocked.Add(ref _budget, -n) + n;
                    allowed = (int)Math.Clamp(left, 0, n);
                }

                var oneTime = _fault is ProxyFault.Drop or ProxyFault.Corrupt or ProxyFault.Truncate or ProxyFault.ResetOnce;
                if (_partitioned)
                {
                    continue; // dropped on the floor, as by a cut cable
                }

                if (Tripped && !oneTime)
                {
                    allowed = 0;
                }
                else if (oneTime && allowed < n && Interlocked.Exchange(ref _tripped, 1) == 0)
                {
                    // The one fault, on the chunk that crosses the budget; the budget is spent, so later chunks pass whole.
                    Interlocked.Exchange(ref _budget, long.MaxValue / 2);
                    switch (_fault)
                    {
                        case ProxyFault.Drop:
                            continue;
                        case ProxyFault.Corrupt:
                            buffer[allowed] ^= 0x20;
                            allowed = n;
                            break;
                        case ProxyFault.Truncate:
                            await SendAsync(to, buffer, allowed).ConfigureAwait(false);
                            CutConnections(reset: false);
                            return;
                        default:
                            CutConnections(reset: true);
                            return;
                    }
                }
                else if (oneTime)
                {
                    allowed = n;
                }

                if (allowed > 0 && Latency > TimeSpan.Zero)
                {
                    heads?.Feed(buffer.AsSpan(0, allowed));
                    delayed ??= StartDelayedSender(to);
                    await delayed.Writer.WriteAsync((DateTime.UtcNow + Latency, buffer[..allowed]), _stop.Token).ConfigureAwait(false);
                    if (metered)
                    {
                        Interlocked.Add(ref _forwarded, allowed);
                    }
                }
                else if (allowed > 0)
                {
                    heads?.Feed(buffer.AsSpan(0, allowed));
                    await to.SendAsync(buffer.AsMemory(0, allowed), SocketFlags.None, _stop.Token);
                    if (metered)
                    {
                        Interlocked.Add(ref _forwarded, allowed);
                    }
                }

                if (allowed < n)
                {
                    Trip();
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Delivers chunks at their due time, in order; shuts the sending side once the channel is completed.</summary>
    private System.Threading.Channels.Channel<(DateTime Due, byte[] Bytes)> StartDelayedSender(Socket to)
    {
        var channel = System.Threading.Channels.Channel.CreateUnbounded<(DateTime Due, byte[] Bytes)>();
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var (due, bytes) in channel.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
                {
                    if (due > DateTime.UtcNow)
                    {
                        await Task.Delay(due - DateTime.UtcNow, _stop.Token).ConfigureAwait(false);
                    }

                    await to.SendAsync(bytes, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        });
        return channel;
    }

    private async Task SendAsync(Socket to, byte[] buffer, int count)
    {
        if (count > 0)
        {
            await to.SendAsync(buffer.AsMemory(0, count), SocketFlags.None, _stop.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Ends every connection open now, cleanly (FIN both ways) or with a reset; the proxy goes on accepting.</summary>
    private void CutConnections(bool reset)
    {
        lock (_sockets)
        {
            foreach (var s in _clients.Concat(_upstreams))
            {
                try
                {
                    if (reset)
                    {
                        s.LingerState = new LingerOption(true, 0);
                    }
                    else
                    {
                        s.Shutdown(SocketShutdown.Both);
                    }

                    s.Close();
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException)
                {
                }
            }

            _clients.Clear();
            _upstreams.Clear();
        }
    }

    private void Trip()
    {
        if (Interlocked.Exchange(ref _tripped, 1) == 1 || _fault == ProxyFault.Hang)
        {
            return; // a hang keeps every socket open and silent until Dispose
        }

        CloseAll();
    }

    private void CloseAll()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_sockets)
        {
            foreach (var s in _sockets)
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0); // a reset, as when the process dies
                    s.Close();
                }
                catch (ObjectDisposedException)
                {
                }
            }

            _sockets.Clear();
        }
    }

    /// <summary>
    /// Reads the request lines out of a client's byte stream: a head up to its blank line, then as many body bytes as its
    /// Content-Length says (the S3 client sends no chunked bodies: UseChunkEncoding is off).
    /// </summary>
    private sealed class HttpRequestHeads(List<string> sink)
    {
        private readonly List<byte> _head = [];
        private long _body;
        private bool _lost;

        public void Feed(ReadOnlySpan<byte> data)
        {
            while (data.Length > 0 && !_lost)
            {
                if (_body > 0)
                {
                    var n = (int)Math.Min(_body, data.Length);
                    _body -= n;
                    data = data[n..];
                    continue;
                }

                _head.Add(data[0]);
                data = data[1..];
                if (_head.Count >= 4 && _head[^1] == '\n' && _head[^2] == '\r' && _head[^3] == '\n' && _head[^4] == '\r')
                {
                    var lines = Encoding.ASCII.GetString([.. _head]).Split("\r\n");
                    _head.Clear();
                    lock (sink)
                    {
                        sink.Add(lines[0]);
                    }

                    foreach (var line in lines)
                    {
                        if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                        {
                            _body = long.Parse(line[15..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                        }
                        else if (line.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase))
                        {
                            _lost = true; // a chunked body: the rest of this connection cannot be read as heads
                            lock (sink)
                            {
                                sink.Add("(chunked body: the connection's later requests are not recorded)");
                            }
                        }
                    }
                }
            }
        }
    }

    public void Dispose()
    {
        CloseAll();
        _stop.Dispose();
    }
}
