using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class RestoreVerb
{
    /// <summary>The <c>restore</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var restoreSource = new Option<string>("--source", "-s") { Description = "The source to restore", HelpName = "NAME", Required = true };
        var restoreSnapshot = new Option<string?>("--snapshot") { Description = "A snapshot id, a prefix only it has (at least 4 characters), or latest (the default: the newest with a verified copy)", HelpName = "ID" };
        var restoreArtifact = new Option<string?>("--artifact") { Description = "Only this artifact (see show)", HelpName = "NAME" };
        var restoreTo = new Option<string?>("--to")
        {
            Description = CommandLine.RestoreToHelp(Plugins.Registry),
            HelpName = "DEST",
        };
        var restoreForce = new Option<bool>("--force") { Description = "Restore over a destination that is not empty" };
        var restoreExplain = new Option<bool>("--explain") { Description = "Print the stock-tool commands that restore it without backstop" };
        var restoreIdentity = new Option<string[]>("--identity", "-i") { Description = "An age identity file for encrypted snapshots (besides encryption.identities)", HelpName = "FILE" };
        var restoreInclude = new Option<string[]>("--include")
        {
            Description = "Files snapshots: only the paths this glob matches, and what is under them (repeatable; /srv/app/config, *.conf, /etc/nginx/**)",
            HelpName = "GLOB",
        };
        var restoreStrip = new Option<string?>("--strip-prefix")
        {
            Description = "Files snapshots: restore paths relative to this one (/srv/app/config/x lands as DEST/x with --strip-prefix /srv/app/config); the rest is left out",
            HelpName = "PATH",
        };
        var restoreToTime = new Option<string?>("--to-time")
        {
            Description = "A source with a continuous archive (postgres, mode: physical): recover to this time, with its zone ('2026-12-05 14:03:00+00'), from the newest base backup before it and the archived WAL",
            HelpName = "TIME",
        };
        var restoreToLsn = new Option<string?>("--to-lsn") { Description = "As --to-time, to this position of the archive (an LSN: 0/16B3748)", HelpName = "LSN" };
        var restoreStart = new Option<bool>("--start")
        {
            Description = "A restore to a point (postgres, mode: physical): also start the restored server on a free loopback port and wait until it has replayed to the point and promoted; it keeps running",
        };
        var restore = new Command("restore", "Restore a snapshot (its hash is checked first; another target is used when a copy is bad)");
        foreach (var o in new Option[] { restoreSource, restoreSnapshot, restoreArtifact, restoreTo, restoreForce, restoreExplain, restoreIdentity, restoreInclude, restoreStrip,
                     restoreToTime, restoreToLsn, restoreStart })
        {
            restore.Add(o);
        }

        restore.SetAction((p, ct) => ExecuteAsync(Context.From(p), new RestoreRequest(p.GetValue(restoreSource)!, p.GetValue(restoreSnapshot),
            p.GetValue(restoreArtifact), p.GetValue(restoreTo), p.GetValue(restoreForce), p.GetValue(restoreExplain), p.GetValue(restoreIdentity) ?? [],
            p.GetValue(restoreInclude) ?? [], p.GetValue(restoreStrip), p.GetValue(restoreToTime), p.GetValue(restoreToLsn), p.GetValue(restoreStart)), ct));
        return restore;
    }

    public static async Task<int> ExecuteAsync(Context context, RestoreRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var (sourceName, snapshotId, artifact, destination, force, explain, identityFiles, include, stripPrefix, toTime, toLsn, start) = request;
        if (explain && (include.Count > 0 || stripPrefix is not null))
        {
            throw new ConfigException("--include and --strip-prefix: the stock recipe restores the whole artifact; name paths after it to tar -x instead");
        }

        var config = context.LoadConfig();
        Context.RequireSources(config, [sourceName]);
        var def = config.Source(sourceName)!;
        var pitr = Plugins.Registry.Source(def.Kind)!.Create(def).Capability<IPointInTimeRestorable>();
        if (start && (explain || pitr is not { RestoresToPoints: true }))
        {
            throw new ConfigException(explain ? "--start with --explain: the recipe's last line says how to start it" : $"--start: '{def.Name}' keeps no continuous archive; --start applies to a postgres source with mode: physical");
        }

        using var catalog = Context.OpenCatalog(config);
        // A source with a continuous archive restores to a point of it: the one asked for, else the end of the archive.
        var point = Point(def, snapshotId, toTime, toLsn);
        var restorer = new Restorer(config, Plugins.Registry, catalog)
        {
            ExtraIdentityFiles = identityFiles.Select(Path.GetFullPath).ToList(), Include = include, StripPrefix = stripPrefix, Point = point,
        };
        var snapshot = toTime is not null || toLsn is not null ? restorer.FindSnapshotAt(def, point!) : restorer.FindSnapshot(def, snapshotId);
        foreach (var note in restorer.Notes)
        {
            Console.Error.WriteLine($"backstop: note: {note}");
        }

        if (explain)
        {
            return Explain(context, config, def, snapshot, artifact, destination, identityFiles, point, catalog);
        }

        if (string.IsNullOrEmpty(destination))
        {
            throw new ConfigException("--to: say where to restore (a folder, a file, or a database URI, depending on the source)");
        }

        var said = restorer.Notes.Count;
        IReadOnlyList<Core.Restore.RestoredArtifact> results;
        var passedOver = new List<string>(); // newer snapshots whose every copy this restore proved bad
        var recorded = 0;
        void RecordFindings(string what)
        {
            // Every copy found bad is recorded with an event, in one transaction: status, list and the next latest see it.
            var found = restorer.Findings.Skip(recorded).ToList();
            recorded = restorer.Findings.Count;
            if (found.Count > 0)
            {
                catalog.RecordFindings(found, () => catalog.AddEvent("error", def.Name, found[0].Snapshot,
                    $"restore: {what}: {string.Join("; ", found.Select(f => f.Copy.Error))}"));
            }
        }

        while (true)
        {
            try
            {
                results = await restorer.RestoreAsync(def, snapshot, artifact, destination, force, cancellationToken).ConfigureAwait(false);
                RecordFindings("copies passed over");
                break;
            }
            catch (NoGoodCopyException e) when (e.AllProvenBad && snapshotId is null or "latest")
            {
                // latest is the newest snapshot that can be restored: this one cannot (every copy read and found bad).
                RecordFindings($"snapshot {e.Snapshot} is unrestorable");
                passedOver.Add(e.Snapshot);
                Console.Error.WriteLine($"backstop: {e.Message}");
                try
                {
                    snapshot = restorer.FindSnapshot(def, "latest");
                }
                catch (Core.Plugins.BackupException none)
                {
                    throw new Core.Plugins.BackupException($"every copy of snapshot {string.Join(", ", passedOver)} is bad, and no older snapshot can be restored: {none.Message}");
                }

                Console.Error.WriteLine($"backstop: snapshot {e.Snapshot} is unrestorable; restoring {snapshot.Id}, the newest older snapshot with a good copy");
            }
            catch (Core.Plugins.BackupException)
            {
                RecordFindings("copies found bad");
                throw;
            }
            finally
            {
                foreach (var note in restorer.Notes.Skip(said))
                {
                    Console.Error.WriteLine($"backstop: note: {note}");
                }

                said = restorer.Notes.Count;
            }
        }

        if (context.Json)
        {
            JsonOutput.Write(new RestoreDocument(snapshot.Id, def.Name, destination, passedOver, restorer.Notes,
                [.. results.Select(r => new RestoredArtifactDocument(r.Artifact, r.Target, r.SkippedCopies, r.Recorded, r.Found, r.Mismatch))]));
        }
        else
        {
            foreach (var r in results)
            {
                foreach (var skipped in r.SkippedCopies)
                {
                    Terminal.Out.MarkupLine($"[yellow]skipped[/] {Markup.Escape(skipped)}");
                }

                // Say which facts were compared and which could not be: "as recorded" only ever about what was compared.
                var compared = r.Found.Where(f => r.Recorded.ContainsKey(f.Key)).ToList();
                var notCompared = r.Recorded.Keys.Where(k => !r.Found.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
                var facts = compared.Count == 0
                    ? "its SHA-256 matched; no fact could be compared in what was restored"
                    : string.Join(", ", compared.Select(f => $"{f.Key}={f.Value}")) + ", as recorded";
                if (notCompared.Count > 0 && compared.Count > 0)
                {
                    facts += $" (not compared: {string.Join(", ", notCompared)})";
                }

                Terminal.Out.MarkupLine(r.Mismatch is null
                    ? $"[green]restored[/] {Markup.Escape(r.Artifact)} of {snapshot.Id} from '{Markup.Escape(r.Target)}' to {Markup.Escape(destination)}: {Markup.Escape(facts)}"
                    : $"[red]restored, but not as recorded[/] {Markup.Escape(r.Artifact)}: {Markup.Escape(r.Mismatch)}");
            }
        }

        if (start && results.All(r => r.Mismatch is null))
        {
            var running = await pitr!.StartAsync(destination, cancellationToken).ConfigureAwait(false);
            if (!context.Json)
            {
                Terminal.Out.MarkupLine($"[green]started[/] {Markup.Escape(destination)}: {Markup.Escape(running)}");
            }
        }

        passedOver = [.. restorer.PassedOver.Union(passedOver, StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (passedOver.Count > 0 && !context.Json)
        {
            Terminal.Out.MarkupLine($"[yellow]restored {snapshot.Id}, not the newest[/]: {Markup.Escape(string.Join(", ", passedOver))} " +
                                    $"newer, with no good copy to restore (see 'backstop list')");
        }

        return results.Any(r => r.Mismatch is not null) ? ExitCodes.Failed : passedOver.Count > 0 ? ExitCodes.Degraded : ExitCodes.Ok;
    }

    /// <summary>
    /// Where a restore ends: the point <c>--to-time</c> or <c>--to-lsn</c> names, the end of the archive for a kind that
    /// restores to points when neither is given, or null for a kind that does not.
    /// </summary>
    private static RestorePoint? Point(SourceDefinition def, string? snapshotId, string? toTime, string? toLsn)
    {
        if (toTime is null && toLsn is null)
        {
            return Plugins.Registry.Source(def.Kind)!.Create(def).Capability<IPointInTimeRestorable>() is { RestoresToPoints: true } ? RestorePoint.End : null;
        }

        if (toTime is not null && toLsn is not null)
        {
            throw new ConfigException("--to-time and --to-lsn: give one of them");
        }

        if (snapshotId is not null)
        {
            throw new ConfigException($"--snapshot with {(toTime is not null ? "--to-time" : "--to-lsn")}: a restore to a point starts from the newest base backup before it; leave it out");
        }

        DateTimeOffset? time = null;
        if (toTime is not null)
        {
            time = DateTimeOffset.TryParse(toTime, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var t)
                   && (toTime.Contains('+', StringComparison.Ordinal) || toTime.EndsWith('Z') || toTime.Count(c => c == '-') > 2)
                ? t
                : throw new ConfigException($"--to-time {toTime}: a time with its zone, like '2026-12-05 14:03:00+00' or 2026-12-05T14:03:00Z");
        }

        return new RestorePoint(time, toLsn);
    }

    private static int Explain(Context context, BackstopConfig config, SourceDefinition def, Core.Catalog.SnapshotInfo snapshot, string? artifact, string? destination,
        IReadOnlyList<string> identityFiles, RestorePoint? point, Core.Catalog.CatalogStore catalog)
    {
        if (artifact is not null && snapshot.Artifacts.All(a => a.Name != artifact))
        {
            throw new ConfigException($"--artifact {artifact}: snapshot {snapshot.Id} has {string.Join(", ", snapshot.Artifacts.Select(a => a.Name))}");
        }

        var key = identityFiles.Select(Path.GetFullPath).Concat(config.Encryption?.Identities.Select(i => i.Reference[5..]) ?? []).FirstOrDefault();
        var source = Plugins.Registry.Source(def.Kind)!.Create(def);
        var places = destination is null ? new Dictionary<string, string>(StringComparer.Ordinal) : source.RecipePlaces(destination);
        // A local target that holds a verified copy, when there is one: its folder holds the recipe's input.
        string? LocalFolder(IEnumerable<Core.Catalog.CopyInfo> copies) =>
            config.Targets.Where(t => def.Targets.Contains(t.Name) && copies.Any(c => c.Target == t.Name && c.State == Core.Catalog.CopyState.Verified))
                .Select(t => Plugins.Registry.Target(t.Kind)!.Create(t).Place).FirstOrDefault(p => p.OnThisHost && p.Path is not null)?.Path;
        var steps = StockRecipe.Steps(source, config, snapshot, artifact, places, key, (at, a) =>
        {
            var local = LocalFolder(a.Copies);
            return local is null ? null : new StoredPaths(
                Path.Combine(local, Core.Storage.Layout.Key(at.Source, at.Id, a.FileName)),
                Path.Combine(local, Core.Storage.Layout.Key(at.Source, at.Id, Core.Storage.Layout.ManifestName)),
                Path.Combine(local, Core.Storage.Layout.BlobFolder(at.Source).TrimEnd('/')));
        }).Select(s => new ExplainStepDocument(s.Artifact, s.Snapshot, s.Level, s.File, s.Sha256, s.Check, s.Restore)).ToList();

        // A restore to a point: the archive's files up to it, and what replays them (DEST filled where --to says it).
        // With no point asked for and an archive that does not reach the base backup's end, the base backup's own
        // recipe is still printed (pg_verifybackup checks what it extracts), saying that it does not start alone.
        List<string> archiveSteps = [];
        if (point is not null && source.Capability<IPointInTimeRestorable>() is { RestoresToPoints: true } pitr)
        {
            try
            {
                archiveSteps = StockRecipe.PointSteps(pitr, config, snapshot, point, catalog.Archive(def.Name), catalog.Markers(def.Name), key, file =>
                        LocalFolder(file.Copies) is { } local ? Path.Combine(local, Core.Storage.Layout.ArchiveKey(def.Name, file.Folder, file.StoredFile)) : null)
                    .Select(line => destination is null ? line : StockRecipe.FillIn(line, new Dictionary<string, string>(StringComparer.Ordinal) { ["DEST"] = Path.GetFullPath(destination) }))
                    .ToList();
            }
            catch (BackupException e) when (point == RestorePoint.End)
            {
                archiveSteps = [$"# No WAL to replay: {e.Message}. The base backup alone does not start as a server."];
                Console.Error.WriteLine($"backstop: warning: {e.Message}");
            }
        }
        if (context.Json)
        {
            JsonOutput.Write(new ExplainDocument(snapshot.Id, def.Name, point?.ToString(), steps, archiveSteps));
            return ExitCodes.Ok;
        }

        Console.WriteLine(point is null
            ? $"# Restore snapshot {snapshot.Id} of '{def.Name}' with stock tools (zstd, tar, …), without backstop:"
            : $"# Restore '{def.Name}' to {point} with stock tools (zstd, tar, age, the server itself), without backstop: base snapshot {snapshot.Id}, then its archive");
        var unfilled = StockRecipe.Unfilled(steps.Select(s => s.Restore).Concat(archiveSteps));
        if (unfilled.Count > 0)
        {
            // One legend, so that DB and DB_CONNINFO (the same database, written twice) are never taken for two things.
            Console.WriteLine("# Fill in (or give --to, which fills them): " + string.Join("; ", unfilled.Select(p => $"{p.Key} = {p.Value}")));
        }

        foreach (var s in steps)
        {
            var chain = steps.Where(x => x.Artifact == s.Artifact).ToList();
            if (chain.Count > 1 && s.Level == 0)
            {
                Console.WriteLine($"# {s.Artifact} is level {chain[^1].Level} of a chain: its full first, then each level in this order, into the same DEST");
            }

            Console.WriteLine(chain.Count > 1 ? $"# {s.Artifact}, level {s.Level} (snapshot {s.Snapshot})" : $"# {s.Artifact}");
            Console.WriteLine(s.Check);
            Console.WriteLine(s.Restore);
        }

        foreach (var line in archiveSteps)
        {
            Console.WriteLine(line);
        }

        return ExitCodes.Ok;
    }
}

/// <summary>What <c>restore</c> was asked: the source, which snapshot (or a point of its archive), which artifact, where, and how.</summary>
internal sealed record RestoreRequest(string Source, string? Snapshot, string? Artifact, string? Destination, bool Force, bool Explain,
    IReadOnlyList<string> IdentityFiles, IReadOnlyList<string> Include, string? StripPrefix, string? ToTime, string? ToLsn, bool Start);
