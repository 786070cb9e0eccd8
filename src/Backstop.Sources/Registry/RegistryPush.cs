using System.Net;
using System.Net.Http.Headers;
using Backstop.Core.Plugins;

using static Backstop.Sources.Registry.RegistryNames;

namespace Backstop.Sources.Registry;

/// <summary>Writing to a registry: blob uploads (or cross-repository mounts), manifests put by exact bytes, deletes.</summary>
internal sealed class RegistryPusher(RegistrySession session)
{
    /// <summary>
    /// Puts a blob into a repository: mounted from another repository of the same registry when given and allowed
    /// (no bytes sent), else uploaded whole (one PUT of the streamed content, its digest named for the registry to check).
    /// Returns whether it was mounted.
    /// </summary>
    public async Task<bool> PushBlobAsync(string repository, string digest, long size, Func<Stream> content, string? mountFrom, CancellationToken cancellationToken)
    {
        var start = mountFrom is not null
            ? $"v2/{repository}/blobs/uploads/?mount={Uri.EscapeDataString(digest)}&from={Uri.EscapeDataString(mountFrom)}"
            : $"v2/{repository}/blobs/uploads/";
        var scope = mountFrom is not null ? $"{RegistrySession.Scope(repository, "pull,push")} {RegistrySession.Scope(mountFrom, "pull")}" : RegistrySession.Scope(repository, "pull,push");
        Uri location;
        using (var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Post, new Uri(session.BaseUri, start)) { Content = new ByteArrayContent([]) }, scope, cancellationToken)
                   .ConfigureAwait(false))
        {
            if (response.StatusCode == HttpStatusCode.Created && mountFrom is not null)
            {
                return true;
            }

            await session.EnsureAsync(response, start, cancellationToken).ConfigureAwait(false);
            location = response.Headers.Location is { } l ? new Uri(session.BaseUri, l) : throw new BackupException($"the registry at {session.Where} started an upload to {repository} without a Location");
            if (location.GetLeftPart(UriPartial.Authority) != session.BaseUri.GetLeftPart(UriPartial.Authority))
            {
                throw new BackupException($"the registry at {session.Where} sent the upload to another server ({location.GetLeftPart(UriPartial.Authority)}); refused");
            }
        }

        var put = new UriBuilder(location) { Query = (location.Query.TrimStart('?') is { Length: > 0 } q ? q + "&" : "") + "digest=" + Uri.EscapeDataString(digest) }.Uri;
        using (var response = await session.SendAsync(() =>
               {
                   var body = new StreamContent(content());
                   body.Headers.ContentLength = size;
                   body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                   return new HttpRequestMessage(HttpMethod.Put, put) { Content = body };
               }, scope, cancellationToken).ConfigureAwait(false)) // the scope the upload began with: its token is held, so the body is sent once
        {
            await session.EnsureAsync(response, $"v2/{repository}/blobs/uploads/…", cancellationToken).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>Puts a manifest's exact bytes under a reference (its digest, or a tag).</summary>
    public async Task PutManifestAsync(string repository, string reference, byte[] bytes, string mediaType, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/manifests/{reference}";
        using var response = await session.SendAsync(() =>
        {
            var body = new ByteArrayContent(bytes);
            body.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return new HttpRequestMessage(HttpMethod.Put, new Uri(session.BaseUri, path)) { Content = body };
        }, RegistrySession.Scope(repository, "pull,push"), cancellationToken).ConfigureAwait(false);
        await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var said) && said.FirstOrDefault() is { } d && d != Digest(bytes))
        {
            throw new BackupException($"the registry at {session.Where} stored {repository}:{reference} as {Printable(d)}, not as the {Digest(bytes)} sent");
        }
    }

    /// <summary>Deletes a manifest by digest; false when the registry does not allow deletes.</summary>
    public async Task<bool> DeleteManifestAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/manifests/{digest}";
        using var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, new Uri(session.BaseUri, path)), RegistrySession.Scope(repository, "delete"), cancellationToken)
            .ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            return response.StatusCode == HttpStatusCode.NotFound;
        }

        await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        return true;
    }
}
