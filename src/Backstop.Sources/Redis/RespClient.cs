using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Backstop.Sources.Redis;

/// <summary>
/// The few RESP exchanges Backstop needs (AUTH, PING, INFO, SYNC), written by hand because no Redis client is
/// served here. Replies: simple strings, errors, integers and bulk strings.
/// </summary>
internal sealed class RespClient : IAsyncDisposable
{
    /// <summary>The largest bulk reply read whole (INFO, a key count): the RDB itself is streamed, never read as one.</summary>
    private const int BulkLimit = 64 << 20;

    private readonly TcpClient _tcp;
    private readonly BufferedStream _stream;

    private RespClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = new BufferedStream(tcp.GetStream(), 1 << 16);
    }

    public static async Task<RespClient> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken ct)
    {
        var tcp = new TcpClient { NoDelay = true };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await tcp.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            return new RespClient(tcp);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>The raw stream, for reading a payload after a command (SYNC).</summary>
    public Stream Stream => _stream;

    public async Task SendAsync(CancellationToken ct, params string[] args)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"*{args.Length}\r\n");
        foreach (var a in args)
        {
            sb.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(a)}\r\n").Append(a).Append("\r\n");
        }

        await _stream.WriteAsync(Encoding.UTF8.GetBytes(sb.ToString()), ct).ConfigureAwait(false);
        await _stream.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Sends a command and reads one reply as text; a server error becomes a <see cref="RedisErrorException"/>.</summary>
    public async Task<string?> CommandAsync(CancellationToken ct, params string[] args)
    {
        await SendAsync(ct, args).ConfigureAwait(false);
        return await ReadReplyAsync(ct).ConfigureAwait(false);
    }

    public async Task<string?> ReadReplyAsync(CancellationToken ct)
    {
        var line = await ReadLineAsync(ct).ConfigureAwait(false);
        if (line.Length == 0)
        {
            throw new IOException("empty reply from Redis");
        }

        switch (line[0])
        {
            case '+':
            case ':':
                return line[1..];
            case '-':
                throw new RedisErrorException(line[1..]);
            case '$':
                if (!int.TryParse(line.AsSpan(1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var length) || length > BulkLimit)
                {
                    // A reply that is not a length, or one larger than any answer Backstop asks for: never allocated.
                    throw new IOException($"unexpected reply from Redis: a bulk string of '{Backstop.Core.Text.ServerText.Printable(line[1..Math.Min(line.Length, 24)])}' bytes");
                }

                if (length < 0)
                {
                    return null;
                }

                var buffer = new byte[length + 2];
                await _stream.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
                return Encoding.UTF8.GetString(buffer, 0, length);
            default:
                throw new IOException($"unexpected reply from Redis: {line[..Math.Min(line.Length, 40)]}");
        }
    }

    /// <summary>One CRLF-terminated line, without the CRLF.</summary>
    public async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var bytes = new List<byte>(64);
        var one = new byte[1];
        while (true)
        {
            if (await _stream.ReadAsync(one, ct).ConfigureAwait(false) == 0)
            {
                throw new IOException("Redis closed the connection");
            }

            if (one[0] == '\n')
            {
                if (bytes.Count > 0 && bytes[^1] == '\r')
                {
                    bytes.RemoveAt(bytes.Count - 1);
                }

                return Encoding.UTF8.GetString(bytes.ToArray());
            }

            bytes.Add(one[0]);
            if (bytes.Count > 1 << 20)
            {
                throw new IOException("reply line from Redis too long");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync().ConfigureAwait(false);
        _tcp.Dispose();
    }
}

internal sealed class RedisErrorException(string message) : Exception(message);
