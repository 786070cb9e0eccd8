using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Storage;

namespace Backstop.Core.Restore;

/// <summary>Where an artifact's stored file, its snapshot's manifest and its source's shared blobs are on this machine.</summary>
public sealed record StoredPaths(string File, string Manifest, string Blobs);

/// <summary>
/// One step of a restore with stock tools: an artifact (a level of a chain: each level is a step, oldest first), the
/// file it reads, the checksum that proves it and the commands that restore it, placeholders filled where known.
/// </summary>
public sealed record RecipeStep(string Artifact, string Snapshot, int Level, string FileName, string Key, string Sha256, string File, string Check, string Restore)
{
    /// <summary>The shared blobs (stored files, under the source's blobs folder) the step reads besides its file.</summary>
    public IReadOnlyList<string> Blobs { get; init; } = [];
}

/// <summary>
/// The stock-tool recipes of a snapshot, as <c>restore --explain</c> prints them and a rehearsal's runbook writes them:
/// every artifact with something to restore (a listing has none), a chained one as its full then every level above it.
/// </summary>
public static class StockRecipe
{
    /// <summary>What each placeholder of a recipe stands for, in the order a person fills them.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Placeholders { get; } =
    [
        new("DEST", "the folder to restore into"), new("URL", "the server's URL"), new("HOST", "the server's host"), new("PORT", "its port"),
        new("USER", "the user to connect as"), new("DB", "the name of the database to create"),
        new("DB_CONNINFO", "that same name written as dbname='NAME' (quoted for libpq, so a name holding '=' stays a name)"),
        new("REGISTRY", "the registry host[:port][/prefix] to push to"), new("TLS_VERIFY", "true, or false for a plain-http registry"),
        new("KEY_FILE", "the age identity file"), new("REPOSITORY", "the repository to push to"),
        new("MANIFEST", "the snapshot's MANIFEST.json (SOURCE/SNAPSHOT/MANIFEST.json on a target)"),
        new("BLOBS", "the folder of the source's shared blobs (SOURCE/blobs/sha256 on a target)"),
    ];

    /// <param name="where">The stored file's local paths, or null when it must be copied from a target first.</param>
    public static List<RecipeStep> Steps(ISource source, BackstopConfig config, SnapshotInfo snapshot, string? artifact, IReadOnlyDictionary<string, string> places,
        string? keyFile, Func<SnapshotInfo, ArtifactInfo, StoredPaths?> where)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(where);
        var passphrase = config.Encryption?.Passphrase is not null;
        var chosen = snapshot.Artifacts.Where(a => artifact is null || a.Name == artifact)
            .Where(a => artifact is not null || source.Capability<IRestorable>()?.Restores(a.Name) != false)
            .SelectMany(a => a.Level > 0 ? Restorer.Levels(snapshot, a) : [(snapshot, a)]).ToList();
        return chosen.Select(level =>
        {
            var (at, a) = level;
            var key = Layout.Key(at.Source, at.Id, a.FileName);
            var paths = where(at, a);
            var file = paths?.File ?? $"{key} (copied from a target first)";
            var values = new Dictionary<string, string>(places, StringComparer.Ordinal);
            if (paths is not null)
            {
                values[Text.ShellWord.QuoteIfNeeded(a.FileName)] = paths.File; // the recipe names the stored file as one shell word
                values["MANIFEST"] = paths.Manifest;
                values["BLOBS"] = paths.Blobs;
            }

            if (keyFile is not null)
            {
                values["KEY_FILE"] = keyFile;
            }

            var recipe = FillIn(Recipe(source, a.Name, a.FileName, passphrase), values);
            var check = $"echo {Text.ShellWord.Quote($"{a.Sha256}  {(paths is not null ? file : a.FileName)}")} | sha256sum -c";
            var blobs = at.Blobs.Count == 0 ? [] : at.Blobs.Select(b => b.FileName).ToList();
            return new RecipeStep(a.Name, at.Id, a.Level, a.FileName, key, a.Sha256, file, check, recipe) { Blobs = blobs };
        }).ToList();
    }

    /// <summary>The placeholders a set of recipes leaves for a person to fill, in the order they are listed.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Unfilled(IEnumerable<string> recipes)
    {
        var all = recipes.ToList();
        return Placeholders.Where(p => all.Any(r => System.Text.RegularExpressions.Regex.IsMatch(r, $@"(?<![\w.]){p.Key}(?![\w.])"))).ToList();
    }

    /// <summary>
    /// Each placeholder (a whole word) and the stored file's name replaced once, in one pass, by its value quoted for
    /// the shell: a value that holds another placeholder's name, a quote or a ';' stays what it is.
    /// </summary>
    public static string FillIn(string recipe, IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return recipe;
        }

        var pattern = string.Join("|", values.Keys.OrderByDescending(k => k.Length).Select(k =>
            k.All(c => char.IsAsciiLetterUpper(c) || c == '_') ? $@"(?<![\w.]){k}(?![\w.])" : System.Text.RegularExpressions.Regex.Escape(k)));
        return System.Text.RegularExpressions.Regex.Replace(recipe, pattern, m => Text.ShellWord.Quote(values[m.Value]));
    }

    /// <summary>
    /// The stock-tool steps that follow the base snapshot's own recipe in a restore to a point of a continuous archive:
    /// each archive file the point needs decoded (<c>age -d</c>, <c>zstd -dc</c>) into the destination's archive folder
    /// and checked against the SHA-256 recorded when it was pushed, then the files and settings that make the server
    /// replay to the point, and the folder given to the server's user. DEST stands for the destination.
    /// </summary>
    /// <param name="local">Where a stored archive file is on this machine (a local target holding it verified), or null.</param>
    public static IReadOnlyList<string> PointSteps(IPointInTimeRestorable pitr, BackstopConfig config, SnapshotInfo basis, RestorePoint point,
        IReadOnlyList<ArchiveInfo> archive, IReadOnlyList<RecoveryMarker> markers, string? keyFile, Func<ArchiveInfo, string?> local)
    {
        ArgumentNullException.ThrowIfNull(pitr);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(archive);
        ArgumentNullException.ThrowIfNull(local);
        var reader = new ListedArchive(archive.Where(a => a.Copies.Any(c => c.State == CopyState.Verified)).Select(a => a.AsFile()).ToList(),
            markers);
        var needed = pitr.Needs(basis, point, reader);
        var setup = pitr.Recovery(basis, point);
        var byName = archive.ToDictionary(a => a.Name, StringComparer.Ordinal);
        var decrypt = config.Encryption?.Passphrase is not null ? "age -d" : "age -d -i " + (keyFile is null ? "KEY_FILE" : Text.ShellWord.Quote(keyFile));
        var folder = $"DEST/{setup.ArchiveFolder}";
        var history = archive.Where(a => a.Name.EndsWith(".history", StringComparison.Ordinal) && a.Copies.Any(c => c.State == CopyState.Verified)).ToList();
        var steps = new List<string>
        {
            $"# The archive: {needed.Count} file(s) from {needed[0].Name} to {needed[^1].Name}{(history.Count > 0 ? $" and {history.Count} timeline history file(s)" : "")}, " +
            "each checked against the SHA-256 recorded when it was archived",
            $"mkdir -p {folder}",
        };
        foreach (var file in needed.Select(n => byName[n.Name]).Concat(history))
        {
            var stored = local(file) is { } path ? Text.ShellWord.Quote(path) : $"{Text.ShellWord.Quote(Layout.ArchiveKey(basis.Source, file.Folder, file.StoredFile))} (copied from a target first)";
            var into = $"{folder}/{file.Name}";
            var decode = Sealing.Sealed.IsEncrypted(file.StoredFile) ? $"{decrypt} {stored} | zstd -dc > {into}" : $"zstd -dc {stored} > {into}";
            steps.Add($"{decode} && echo {Text.ShellWord.Quote($"{file.Sha256}  ")}{into} | sha256sum -c --quiet");
        }

        steps.Add($"# What makes the server replay to {point}{(point == RestorePoint.End ? "" : ", then promote")}");
        steps.AddRange(setup.EmptyFiles.Select(f => $"touch DEST/{f}"));
        steps.AddRange(setup.IfMissing.Select(f => $"[ -e DEST/{f.Key} ] || printf '%s' {Text.ShellWord.Quote(f.Value)} > DEST/{f.Key}"));
        steps.Add($"cat >> DEST/{setup.ConfigFile} <<'BACKSTOP'\n{setup.ConfigText.Trim('\n')}\nBACKSTOP");
        if (setup.Owner is { } owner)
        {
            steps.Add($"chown -R {owner}:{owner} DEST");
        }

        steps.Add($"# Start it{(setup.Owner is { } o ? $" as {o}" : "")}: {setup.Start}");
        return steps;
    }

    /// <summary>The archive as the catalog lists it, for planning (nothing is read).</summary>
    private sealed class ListedArchive(IReadOnlyList<ArchiveFile> files, IReadOnlyList<RecoveryMarker> markers) : IArchiveReader
    {
        public IReadOnlyList<ArchiveFile> Files => files;

        public IReadOnlyList<RecoveryMarker> Markers => markers;

        public Task FetchAsync(string name, string path, CancellationToken cancellationToken) => throw new InvalidOperationException("a recipe reads nothing");
    }

    /// <summary>The stock-tool recipe (the stored file's name shell-quoted): for an encrypted artifact, age -d first, then the source's own recipe.</summary>
    /// <remarks>A passphrase-sealed file is opened by age asking for the passphrase (no -i: an identity would stop it asking).</remarks>
    public static string Recipe(ISource source, string artifact, string fileName, bool passphrase) =>
        WithDecryption(source.RestoreRecipe(artifact, Text.ShellWord.QuoteIfNeeded(fileName)), artifact, fileName, passphrase);

    /// <summary>A recipe that reads the stored file (named as one shell word), with <c>age -d</c> in front when the file is sealed.</summary>
    public static string WithDecryption(string recipe, string artifact, string fileName, bool passphrase)
    {
        // The stored file's name is one shell word: it may hold whatever a server's database name held.
        var file = Text.ShellWord.QuoteIfNeeded(fileName);
        if (!Sealing.Sealed.IsEncrypted(fileName))
        {
            return recipe;
        }

        if (recipe.StartsWith('#'))
        {
            return recipe; // nothing to restore (a listing): a comment says so
        }

        // Decrypted into the pipe, never into a file: a recipe leaves no clear copy behind (in the current folder or anywhere).
        var decrypt = passphrase ? $"age -d {file}" : $"age -d -i KEY_FILE {file}";
        var piped = recipe.Replace($"zstd -dc {file}", $"{decrypt} | zstd -dc", StringComparison.Ordinal)
            .Replace($"zstd -d < {file}", $"{decrypt} | zstd -d", StringComparison.Ordinal);
        if (passphrase)
        {
            recipe = recipe.Replace("age -d -i KEY_FILE ", "age -d ", StringComparison.Ordinal); // other sealed files it reads (shared blobs) ask too
            piped = piped.Replace("age -d -i KEY_FILE ", "age -d ", StringComparison.Ordinal);
        }
        return piped != recipe ? piped
            : throw new InvalidOperationException($"the {artifact} recipe reads {fileName} other than through zstd -dc or zstd -d <; it cannot be decrypted into a pipe");
    }
}
