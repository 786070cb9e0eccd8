using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;

namespace Backstop.Targets.S3;

public sealed record S3Options(
    Uri? Endpoint,
    string Region,
    string Bucket,
    string Prefix,
    SecretRef? AccessKey,
    SecretRef? SecretKey,
    bool PathStyle,
    int PartSize);

public sealed class S3TargetKind : TargetKind<S3Options>
{
    private const int MinPart = 5 << 20;

    public override string Kind => "s3";

    public override string Summary => "Any S3 API (AWS, MinIO, Ceph, R2, B2…); large artifacts go up in parts, SHA-256 kept in x-amz-meta-sha256.";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("bucket", "team-backups", "The bucket"),
        new("endpoint", "https://s3.example.com", "The S3 API's URL; leave out for AWS") { Default = "AWS" },
        new("region", "eu-west-1", "The region (signatures)"),
        new("prefix", "backstop", "A folder in the bucket") { Default = "none" },
        new("access_key", "env:S3_ACCESS_KEY", "The access key (with secret_key)") { Default = "the AWS environment and instance credentials" },
        new("secret_key", "env:S3_SECRET_KEY", "The secret key (with access_key)"),
        new("part_size", "16MiB", "The size of each part of a multipart upload (5MiB–1GiB): the memory one upload holds"),
        new("path_style", "true", "Path-style URLs (host/bucket/key), which MinIO and most self-hosted servers need") { Default = "true with an endpoint, else false" },
    ];

    public override S3Options Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var bucket = map.RequireString("bucket");
        Uri? endpoint = null;
        if (map.String("endpoint") is { } e)
        {
            if (!Uri.TryCreate(e, UriKind.Absolute, out endpoint) || endpoint.Scheme is not ("http" or "https"))
            {
                throw map.Error("endpoint", $"'{e}' is not an http(s) URL, e.g. https://s3.example.com or http://127.0.0.1:9000");
            }
        }

        var access = map.Secret("access_key");
        var secret = map.Secret("secret_key");
        if ((access is null) != (secret is null))
        {
            throw map.Error(access is null ? "secret_key" : "access_key", "give both access_key and secret_key, or neither (then the AWS environment and instance credentials are used)");
        }

        var partSize = map.SizeOr("part_size", 16L << 20);
        if (partSize is < MinPart or > 1L << 30)
        {
            throw map.Error("part_size", "must be between 5MiB (the S3 minimum) and 1GiB");
        }

        var prefix = (map.String("prefix") ?? "").Trim('/');
        return new S3Options(endpoint, map.StringOr("region", "us-east-1"), bucket, prefix.Length == 0 ? "" : prefix + "/",
            access, secret, map.Bool("path_style") ?? endpoint is not null, (int)partSize);
    }

    public override ITarget Create(TargetDefinition definition, S3Options options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new S3Target(definition.Name, options, definition.StateDirectory);
    }
}

/// <summary>
/// An S3 bucket (AWS or compatible: MinIO, Ceph, R2, B2). Objects appear whole when their upload completes, so no
/// temporary name is needed; large objects go up in parts with one part buffered at a time. The SHA-256 of the
/// stored bytes is recorded in the object's metadata (<c>x-amz-meta-sha256</c>), so a HEAD can tell a replaced
/// object without reading it.
/// </summary>
public sealed class S3Target : ITarget, IServerClock, IDisposable
{
    internal const string ShaMetadata = "sha256";
    private const long CopyLimit = 5L << 30; // the largest single server-side copy
    private readonly S3Options _options;
    private readonly Lazy<AmazonS3Client> _client;
    private readonly string? _journals;
    private readonly MultipartJournal? _journal;

    /// <param name="stateDirectory">The target's private folder, where multipart uploads are journaled (none: not journaled).</param>
    public S3Target(string name, S3Options options, string? stateDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Name = name;
        _options = options;
        _client = new Lazy<AmazonS3Client>(CreateClient);
        if (!string.IsNullOrEmpty(stateDirectory))
        {
            _journals = stateDirectory;
            _journal = new MultipartJournal(stateDirectory);
        }
    }

    public string Name { get; }

    public string Where => $"s3://{_options.Bucket}/{_options.Prefix}" + (_options.Endpoint is { } e ? $" at {e.Authority}" : "");

    /// <summary>The endpoint's host (MinIO on this machine is on this host); AWS itself, without an endpoint, is elsewhere.</summary>
    public TargetPlace Place => new(_options.Endpoint?.Host);

    /// <summary>The AWS CLI, with the bucket's credentials in its own configuration (never on the line).</summary>
    public string FetchCommand(string key, string localPath) =>
        $"aws s3 cp {Backstop.Core.Text.ShellWord.Quote($"s3://{_options.Bucket}/{_options.Prefix}{key}")} {Backstop.Core.Text.ShellWord.Quote(localPath)}" +
        (_options.Endpoint is { } e ? $" --endpoint-url {Backstop.Core.Text.ShellWord.Quote(e.GetLeftPart(UriPartial.Authority))}" : "") +
        $" --region {Backstop.Core.Text.ShellWord.Quote(_options.Region)}";

    public TargetCapabilities Capabilities { get; } = new(AtomicPublish: true, FreeSpaceQuery: false, ServerSideChecksum: true);

    private AmazonS3Client Client => _client.Value;

    /// <summary>The Date header of a plain request to the endpoint (any answer, even 403, carries the server's time).</summary>
    public async Task<DateTimeOffset?> ServerTimeAsync(CancellationToken cancellationToken)
    {
        var endpoint = _options.Endpoint ?? new Uri($"https://s3.{_options.Region}.amazonaws.com/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(15) };
        using var request = new HttpRequestMessage(HttpMethod.Head, endpoint);
        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return response.Headers.Date;
    }

    private AmazonS3Client CreateClient()
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = _options.PathStyle,
            AuthenticationRegion = _options.Region,
            // Plain PUTs with a content length: S3-compatible servers do not all speak aws-chunked trailers.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            MaxErrorRetry = 0, // retries are Backstop's, per target, with the reason in the message
            Timeout = Timeout.InfiniteTimeSpan, // and so are timeouts
        };
        if (_options.Endpoint is { } endpoint)
        {
            config.ServiceURL = endpoint.ToString();
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(_options.Region);
        }

        return _options.AccessKey is { } access
            ? new AmazonS3Client(new BasicAWSCredentials(access.Resolve(), _options.SecretKey!.Resolve()), config)
            : new AmazonS3Client(config);
    }

    private string FullKey(string key)
    {
        if (key.Length == 0 || key.Split('/').Any(p => p is ".." or "." or ""))
        {
            throw new ArgumentException($"invalid object key '{key}'", nameof(key));
        }

        return _options.Prefix + key;
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        var probe = FullKey($".backstop-probe-{Environment.ProcessId}");
        await Guard("probe (write and delete a small object)", probe, async () =>
        {
            await Client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = _options.Bucket, Key = probe, InputStream = new MemoryStream([1]), UseChunkEncoding = false,
            }, cancellationToken).ConfigureAwait(false);
            await Client.DeleteObjectAsync(_options.Bucket, probe, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
    }

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => Task.FromResult<long?>(null);

    public Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken) =>
        Task.FromResult<ITargetUpload>(new Upload(this, FullKey(key)));

    public async Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        var full = FullKey(key);
        var response = await Guard("read", full, async () =>
        {
            try
            {
                return await Client.GetObjectAsync(_options.Bucket, full, cancellationToken).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                throw new ObjectNotFoundException(Name, key);
            }
        }).ConfigureAwait(false);
        return new ResponseStream(response);
    }

    public async Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken)
    {
        var full = FullKey(key);
        return await Guard("stat", full, async () =>
        {
            try
            {
                var m = await Client.GetObjectMetadataAsync(_options.Bucket, full, cancellationToken).ConfigureAwait(false);
                return new ObjectInfo(key, m.ContentLength, m.LastModified ?? DateTime.UtcNow, m.Metadata[ShaMetadata] is { Length: 64 } sha ? sha : null);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
        }).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? token = null;
        do
        {
            var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = _options.Prefix + prefix, ContinuationToken = token };
            var page = await Guard("list", request.Prefix, () => Client.ListObjectsV2Async(request, cancellationToken)).ConfigureAwait(false);
            foreach (var o in page.S3Objects ?? [])
            {
                yield return new ObjectInfo(o.Key[_options.Prefix.Length..], o.Size ?? 0, o.LastModified ?? DateTime.UtcNow);
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
    }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var full = FullKey(key);
        await Guard("delete", full, () => Client.DeleteObjectAsync(_options.Bucket, full, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Aborts the multipart uploads that processes now gone began and never ended (their journals), so their parts stop
    /// taking space. A server that cannot abort (s3rver answers 405) is said once, with the lifecycle rule that does it;
    /// a server that cannot be reached keeps the journal for the next run.
    /// </summary>
    public async Task<IReadOnlyList<string>> SweepLeftoversAsync(IReadOnlyCollection<string> idlePrefixes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idlePrefixes);
        var said = new List<string>();
        if (_journals is null)
        {
            return said;
        }

        DateTime started;
        using (var self = System.Diagnostics.Process.GetCurrentProcess())
        {
            started = self.StartTime.ToUniversalTime();
        }

        foreach (var (journal, journaled, intents, written) in MultipartJournal.Dead(_journals))
        {
            using var held = journal;
            var aborted = 0;
            var refused = 0;
            var denied = 0;
            try
            {
                var open = journaled.ToList();
                // An upload begun by a process killed before it wrote the id down: looked up by its key. Only under a source
                // with nothing running now, and only uploads begun before that process wrote its journal for the last time
                // (a key can be written again: a blob, a WAL segment, a healed copy).
                var waiting = intents.Where(k => !idlePrefixes.Any(p => k.StartsWith(_options.Prefix + p, StringComparison.Ordinal))).ToList();
                if (waiting.Count > 0)
                {
                    continue; // kept (disposed, not deleted) for a run when those sources are idle
                }

                foreach (var key in intents)
                {
                    var (listing, answer) = await AskAsync(() => Client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = _options.Bucket, Prefix = key }, cancellationToken),
                        "listing of the multipart uploads", key).ConfigureAwait(false);
                    refused += answer == SweepAnswer.Cannot ? 1 : 0;
                    denied += answer == SweepAnswer.Denied ? 1 : 0;
                    open.AddRange((listing?.MultipartUploads ?? [])
                        .Where(u => u.Key == key && (u.Initiated is not { } at || at.ToUniversalTime() <= written.AddMinutes(1)) && (u.Initiated is not { } at2 || at2.ToUniversalTime() < started))
                        .Select(u => new KeyValuePair<string, string>(u.UploadId, key)));
                }

                foreach (var (id, key) in open)
                {
                    var (_, answer) = await AskAsync(async () =>
                        {
                            try
                            {
                                await Client.AbortMultipartUploadAsync(_options.Bucket, key, id, cancellationToken).ConfigureAwait(false);
                            }
                            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound || e.ErrorCode == "NoSuchUpload")
                            {
                                // completed or aborted already, or expired by the bucket's lifecycle rule
                            }

                            return true;
                        }, "abort of a multipart upload", key).ConfigureAwait(false);
                    aborted += answer == SweepAnswer.Answered ? 1 : 0;
                    refused += answer == SweepAnswer.Cannot ? 1 : 0;
                    denied += answer == SweepAnswer.Denied ? 1 : 0;
                }
            }
            catch (BackupException e)
            {
                said.Add(e.Message);
                continue; // the journal stays for the next run; the others are still dealt with
            }

            held.Delete();
            if (aborted > 0)
            {
                said.Add($"aborted {MultipartJournal.Describe(aborted)} to target '{Name}' that a run killed mid-upload left unfinished (their parts took space in the bucket)");
            }

            if (refused > 0)
            {
                said.Add($"target '{Name}': {Where} cannot list or abort a multipart upload (it answered 405/501), so the parts of {MultipartJournal.Describe(refused)} a killed run left stay in the bucket; " +
                         "give the bucket a lifecycle rule AbortIncompleteMultipartUpload (e.g. DaysAfterInitiation: 2), or remove them with the server's own tools");
            }

            if (denied > 0)
            {
                said.Add($"target '{Name}': the credentials may not list or abort multipart uploads at {Where} (403), so the parts of {MultipartJournal.Describe(denied)} a killed run left stay in the bucket; " +
                         "allow s3:ListBucketMultipartUploads and s3:AbortMultipartUpload, or give the bucket a lifecycle rule AbortIncompleteMultipartUpload");
            }
        }

        return said;
    }

    private enum SweepAnswer
    {
        Answered,
        Cannot, // the server does not do it (405/501)
        Denied, // the credentials may not (403)
    }

    /// <summary>A request of the sweep: its answer, or why there is none; a failure of another kind ends the journal's sweep.</summary>
    private async Task<(T? Value, SweepAnswer Answer)> AskAsync<T>(Func<Task<T>> request, string what, string key)
    {
        try
        {
            return (await request().ConfigureAwait(false), SweepAnswer.Answered);
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotImplemented)
        {
            return (default, SweepAnswer.Cannot);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.Forbidden)
        {
            return (default, SweepAnswer.Denied);
        }
        catch (Exception e) when (e is AmazonS3Exception or AmazonClientException or HttpRequestException or IOException or SocketException)
        {
            throw new BackupException($"target '{Name}': the {what} of {key} that a killed run left at {Where} failed: {e.Message}; the next run tries again");
        }
    }

    /// <summary>Turns S3 and network failures into a message naming the target, the operation and the likely fix.</summary>
    private async Task<T> Guard<T>(string operation, string key, Func<Task<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized || e.ErrorCode is "InvalidAccessKeyId" or "SignatureDoesNotMatch")
        {
            throw new BackupException($"target '{Name}': {Where} refused the credentials ({e.ErrorCode}) on {operation}: check access_key and secret_key") { Permanent = true };
        }
        catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
        {
            throw new BackupException($"target '{Name}': the bucket '{_options.Bucket}' does not exist at {Where}; create it or fix 'bucket'") { Permanent = true };
        }
        catch (AmazonS3Exception e)
        {
            throw new BackupException($"target '{Name}': {operation} of {key} at {Where} failed: {e.ErrorCode ?? ((int)e.StatusCode).ToString(CultureInfo.InvariantCulture)} {e.Message}");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or SocketException or AmazonClientException)
        {
            var root = e;
            while (root.InnerException is not null)
            {
                root = root.InnerException;
            }

            throw new BackupException(root is SocketException { SocketErrorCode: SocketError.ConnectionRefused }
                ? $"target '{Name}': connection to {Where} refused on {operation}: is the server running?"
                : $"target '{Name}': {operation} of {key} at {Where} failed: {root.Message}");
        }
    }

    public void Dispose()
    {
        if (_client.IsValueCreated)
        {
            _client.Value.Dispose();
        }
    }

    /// <summary>
    /// One object going up: bytes collect in a part buffer; a full buffer becomes a part of a multipart upload. An
    /// object smaller than one part is sent with a single PUT at commit. Disposed without commit: the multipart
    /// upload is aborted, so nothing is left.
    /// </summary>
    private sealed class Upload(S3Target target, string key) : ITargetUpload
    {
        /// <summary>Grows by doubling up to one part: a manifest of 2 KB holds 64 KiB, not the part size, per upload.</summary>
        private byte[] _buffer = GC.AllocateUninitializedArray<byte>(Math.Min(64 << 10, target._options.PartSize));
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly List<PartETag> _parts = [];
        private int _filled;
        private long _size;
        private string? _uploadId;
        private bool _committed;
        private bool _disposed;

        private AmazonS3Client Client => target.Client;

        private string Bucket => target._options.Bucket;

        /// <summary>An end that cannot be written is harmless: the next run's abort finds the upload gone (NoSuchUpload).</summary>
        private void EndJournal()
        {
            try
            {
                target._journal?.End(_uploadId!);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        /// <summary>A journal that cannot be written fails the upload: an upload the next run could not find must not start.</summary>
        private void Journal(Action<MultipartJournal> write)
        {
            if (target._journal is not { } journal)
            {
                return;
            }

            try
            {
                write(journal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BackupException($"target '{target.Name}': cannot journal the multipart upload of {key} in {target._journals}: {e.Message}; check that folder's disk and permissions");
            }
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            _sha.AppendData(data.Span);
            _size += data.Length;
            while (data.Length > 0)
            {
                if (_filled + data.Length > _buffer.Length && _buffer.Length < target._options.PartSize)
                {
                    var grown = GC.AllocateUninitializedArray<byte>((int)Math.Min((long)target._options.PartSize, Math.Max((long)_buffer.Length * 2, _filled + data.Length)));
                    _buffer.AsSpan(0, _filled).CopyTo(grown);
                    _buffer = grown;
                }

                var n = Math.Min(data.Length, _buffer.Length - _filled);
                data[..n].CopyTo(_buffer.AsMemory(_filled));
                _filled += n;
                data = data[n..];
                if (_filled == target._options.PartSize)
                {
                    await SendPartAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }

        private async Task SendPartAsync(CancellationToken ct)
        {
            if (_uploadId is null)
            {
                Journal(j => j.Intent(key)); // before the server makes the upload: a kill from here on is found by the next run
                _uploadId = (await target.Guard("start of a multipart upload", key, () => Client.InitiateMultipartUploadAsync(
                    new InitiateMultipartUploadRequest { BucketName = Bucket, Key = key }, ct)).ConfigureAwait(false)).UploadId;
                Journal(j => j.Begin(_uploadId, key)); // on disk before any part is sent: the next run aborts it by its id
            }

            var number = _parts.Count + 1;
            var response = await target.Guard($"upload of part {number}", key, () => Client.UploadPartAsync(new UploadPartRequest
            {
                BucketName = Bucket,
                Key = key,
                UploadId = _uploadId,
                PartNumber = number,
                InputStream = new MemoryStream(_buffer, 0, _filled, writable: false),
                PartSize = _filled,
                UseChunkEncoding = false,
            }, ct)).ConfigureAwait(false);
            _parts.Add(new PartETag(number, response.ETag));
            _filled = 0;
        }

        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            if (_size == 0)
            {
                throw new BackupException($"target '{target.Name}': refusing to store {key} empty");
            }

            var sha = Convert.ToHexStringLower(_sha.GetHashAndReset());
            if (_uploadId is null)
            {
                var put = new PutObjectRequest
                {
                    BucketName = Bucket, Key = key, InputStream = new MemoryStream(_buffer, 0, _filled, writable: false), UseChunkEncoding = false,
                };
                put.Metadata[ShaMetadata] = sha;
                await target.Guard("upload", key, () => Client.PutObjectAsync(put, cancellationToken)).ConfigureAwait(false);
                _committed = true;
                return;
            }

            if (_filled > 0)
            {
                await SendPartAsync(cancellationToken).ConfigureAwait(false);
            }

            await target.Guard("completion of the multipart upload", key, () => Client.CompleteMultipartUploadAsync(
                new CompleteMultipartUploadRequest { BucketName = Bucket, Key = key, UploadId = _uploadId, PartETags = _parts },
                cancellationToken)).ConfigureAwait(false);
            _committed = true;
            EndJournal();
            if (_size <= CopyLimit)
            {
                // Metadata is fixed when an upload starts, before the hash is known: a server-side copy onto itself adds it.
                var copy = new CopyObjectRequest
                {
                    SourceBucket = Bucket, SourceKey = key, DestinationBucket = Bucket, DestinationKey = key,
                    MetadataDirective = S3MetadataDirective.REPLACE,
                };
                copy.Metadata[ShaMetadata] = sha;
                try
                {
                    await Client.CopyObjectAsync(copy, cancellationToken).ConfigureAwait(false);
                }
                catch (AmazonS3Exception)
                {
                    // Some S3-compatible servers mis-decode the copy source (s3rver 3.7 takes "%2F" literally). The object
                    // is whole and is verified by reading it back; it only lacks the metadata shortcut.
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _sha.Dispose();
            if (!_committed && _uploadId is not null)
            {
                try
                {
                    await Client.AbortMultipartUploadAsync(Bucket, key, _uploadId, CancellationToken.None).ConfigureAwait(false);
                    EndJournal();
                }
                catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException)
                {
                    // left for the next run's sweep of stale uploads
                }
            }
        }
    }

    /// <summary>The body of a GET, disposing the response with it.</summary>
    private sealed class ResponseStream(GetObjectResponse response) : ReadOnlyStream
    {
        private readonly Stream _body = response.ResponseStream;

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await _body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (AmazonClientException e) when (e.Message.Contains("hash", StringComparison.OrdinalIgnoreCase))
            {
                // The SDK checks what it read against the object's MD5 (ETag): the stored bytes are damaged.
                throw new InvalidDataException($"the bytes read from {response.Key} do not match the object's own checksum (ETag): the stored object is damaged");
            }
        }


        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _body.Dispose();
                response.Dispose();
            }

            base.Dispose(disposing);
        }

    }
}
