using Backstop.Core.Catalog;
using Backstop.Core.Plugins;

namespace Backstop.Tests.Catalog; // compiled into both test projects: SQLite here, PostgreSQL there

/// <summary>
/// What the catalog must do on every engine, run against each (SQLite embedded, PostgreSQL shared): one SQL text, the
/// same answers — order, upserts, cascades, nulls, 64-bit numbers, byte-order names and times.
/// </summary>
public abstract class CatalogConformance
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 2, 0, 0, 123, TimeSpan.Zero);

    /// <summary>Opens this test's catalog (the same one each call; new and empty for each test).</summary>
    protected abstract CatalogStore Open();

    /// <summary>Sets the schema version recorded in this test's catalog, as a newer backstop would have left it.</summary>
    protected abstract void SetSchemaVersion(int version);

    private static CopyInfo Copy(string target, CopyState state = CopyState.Verified, int minutes = 0, string? error = null) => new(target, state, T0.AddMinutes(minutes), error);

    private static ArtifactInfo Artifact(string name, params CopyInfo[] copies) =>
        new(name, name + ".zst", 100, 40, "ab" + name, "zstd", new Dictionary<string, long> { ["rows"] = 5_000_000_000L }, copies);

    private static SnapshotInfo Committed(string id, string source, DateTimeOffset at, params ArtifactInfo[] artifacts) =>
        new(id, source, "files", SnapshotState.Committed, at, at.AddSeconds(3), "vps1", 300, 120, new Dictionary<string, long> { ["files"] = 3 }, ["warned"], null, artifacts);

    private static void Record(CatalogStore c, SnapshotInfo s, string? outcome = "valid")
    {
        c.BeginSnapshot(s.Id, s.Source, s.Kind, s.StartedAt, s.Host);
        c.FinishSnapshot(s, outcome);
    }

    [Fact]
    public void Opening_again_keeps_the_data_and_the_schema_is_current()
    {
        using (var c = Open())
        {
            c.BeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h");
        }

        using (var c = Open())
        using (var d = Open())
        {
            Assert.Single(c.Snapshots());
            Assert.Single(d.Snapshots());
            Assert.Equal([("s", "files")], c.Sources());
        }
    }

    [Fact]
    public void A_catalog_from_a_newer_backstop_is_refused_naming_the_version_it_needs()
    {
        Open().Dispose();
        SetSchemaVersion(CatalogStore.SchemaVersion + 5);
        var e = Assert.Throws<BackupException>(() => Open());
        Assert.Contains($"schema version {CatalogStore.SchemaVersion + 5}, newer than this backstop knows ({CatalogStore.SchemaVersion})", e.Message, StringComparison.Ordinal);
        Assert.Contains("upgrade backstop", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_snapshot_round_trips_with_artifacts_in_their_order_facts_warnings_and_copies()
    {
        using var c = Open();
        var s = Committed("20260301T020000Z-0001", "s", T0,
            Artifact("zeta.tar", Copy("nas"), Copy("s3", CopyState.Failed, 1, "timeout: 'quoted' \"and\" ünïcode")),
            Artifact("alpha.sql") with { Reported = ["rows"], Level = 0 },
            Artifact("mid.dump", Copy("nas")));
        Record(c, s);
        var back = Assert.Single(c.Snapshots("s"));
        Assert.Equal(["zeta.tar", "alpha.sql", "mid.dump"], back.Artifacts.Select(a => a.Name));
        Assert.Equal(SnapshotState.Committed, back.State);
        Assert.Equal(T0, back.StartedAt);
        Assert.Equal(T0.AddSeconds(3), back.FinishedAt);
        Assert.Equal(3, back.Facts["files"]);
        Assert.Equal(["warned"], back.Warnings);
        Assert.Equal(5_000_000_000L, back.Artifacts[0].Facts["rows"]);
        Assert.Equal(["rows"], back.Artifacts[1].Reported);
        Assert.Equal(["nas", "s3"], back.Artifacts[0].Copies.Select(x => x.Target));
        Assert.Equal("timeout: 'quoted' \"and\" ünïcode", back.Artifacts[0].Copies[1].Error);
        Assert.Equal(CopyState.Failed, back.Artifacts[0].Copies[1].State);
        Assert.Empty(back.Artifacts[1].Copies);
        Assert.Equal("files", back.Kind);
        Assert.Equal("vps1", back.Host);
        Assert.Equal((300L, 120L), (back.RawBytes, back.StoredBytes));
        Assert.Equal(back, c.Snapshot(s.Id) is { } one ? one with { } : null, SnapshotComparer.Instance);
        Assert.Null(c.Snapshot("20990101T000000Z-0001"));
        Assert.Equal((T0, T0.AddSeconds(3)), c.SnapshotTimes(s.Id));
    }

    [Fact]
    public void A_taken_id_is_refused_without_an_error_and_an_unknown_one_cannot_finish()
    {
        using var c = Open();
        Assert.True(c.TryBeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h"));
        Assert.False(c.TryBeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h"));
        Assert.Throws<InvalidOperationException>(() => c.BeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h"));
        Assert.Throws<InvalidOperationException>(() => c.FinishSnapshot(Committed("20260301T020000Z-0009", "s", T0)));
        Assert.Null(c.SnapshotTimes("20260301T020000Z-0001")); // running: not finished
        Assert.Single(c.Snapshots());
    }

    [Fact]
    public void Finishing_again_updates_artifacts_and_keeps_copies_on_other_targets()
    {
        using var c = Open();
        var s = Committed("20260301T020000Z-0001", "s", T0, Artifact("a.tar", Copy("nas")));
        Record(c, s);
        c.FinishSnapshot(s with { Artifacts = [Artifact("a.tar", Copy("s3")) with { StoredBytes = 41 }] });
        var a = Assert.Single(c.Snapshot(s.Id)!.Artifacts);
        Assert.Equal(41, a.StoredBytes);
        Assert.Equal(["nas", "s3"], a.Copies.Select(x => x.Target));
    }

    [Fact]
    public void Snapshots_come_oldest_first_and_recent_ones_are_the_newest_by_time_then_id()
    {
        using var c = Open();
        Record(c, Committed("20260301T020000Z-0002", "s", T0));
        Record(c, Committed("20260301T020000Z-0001", "s", T0)); // the same millisecond: the id decides
        Record(c, Committed("20260301T010000Z-0001", "s", T0.AddMilliseconds(-1)));
        Record(c, Committed("20260301T030000Z-0001", "s", T0.AddHours(1)));
        Record(c, Committed("20260301T030000Z-0001x", "other", T0.AddHours(2)));
        Assert.Equal(["20260301T010000Z-0001", "20260301T020000Z-0001", "20260301T020000Z-0002", "20260301T030000Z-0001"], c.Snapshots("s").Select(x => x.Id));
        Assert.Equal(5, c.Snapshots().Count);
        Assert.Equal(["20260301T020000Z-0002", "20260301T030000Z-0001"], c.RecentSnapshots("s", 2).Select(x => x.Id));
        var lean = c.RecentSnapshots("s", 1, facts: false).Single();
        Assert.Empty(lean.Facts);
        Assert.Equal(["20260301T030000Z-0001"], [lean.Id]);
    }

    [Fact]
    public void The_newest_snapshots_and_drills_of_many_sources_come_in_one_go_as_each_alone()
    {
        using var c = Open();
        for (var i = 0; i < 5; i++)
        {
            Record(c, Committed($"20260301T02000{i}Z-000a", "a", T0.AddMinutes(i)));
            Record(c, Committed($"20260301T02000{i}Z-000b", "b", T0.AddMinutes(-i)));
        }

        Record(c, Committed("20260301T030000Z-000c", "c", T0));
        var many = c.RecentSnapshotsOf(["a", "b", "c", "none"], 3, facts: false);
        foreach (var name in new[] { "a", "b", "c", "none" })
        {
            Assert.Equal(c.RecentSnapshots(name, 3, facts: false).Select(x => x.Id), many[name].Select(x => x.Id));
        }

        Assert.Equal(["20260301T020002Z-000a", "20260301T020003Z-000a", "20260301T020004Z-000a"], many["a"].Select(x => x.Id));
        Assert.Empty(many["none"]);

        c.AddDrill(new DrillInfo(0, "a", "x", T0, true, 1, 0, null, null, null, null, "{}"));
        c.AddDrill(new DrillInfo(0, "a", "y", T0, false, 1, 0, null, null, "no", null, "{}"));
        c.AddDrill(new DrillInfo(0, "b", "z", T0, true, 1, 0, null, null, null, null, "{}"));
        var drills = c.LatestDrillsOf(["a", "b", "c"]);
        Assert.Equal(c.LatestDrills("a").Select(d => d.Id), drills["a"].Select(d => d.Id));
        Assert.Equal(["x", "y"], drills["a"].Select(d => d.Snapshot));
        Assert.Equal(["z"], drills["b"].Select(d => d.Snapshot));
        Assert.Empty(drills["c"]);
    }

    [Fact]
    public void Names_order_by_bytes_on_every_engine()
    {
        using var c = Open();
        foreach (var name in new[] { "b", "B", "a", "a-b", "a_b", "é" })
        {
            c.EnsureSource(name, "files");
        }

        c.EnsureSource("a", "redis"); // a second definition updates the kind
        Assert.Equal(["B", "a", "a-b", "a_b", "b", "é"], c.Sources().Select(x => x.Name));
        Assert.Equal("redis", c.Sources().Single(x => x.Name == "a").Kind);
    }

    [Fact]
    public void A_chained_snapshot_loads_every_level_below_it_even_alone()
    {
        using var c = Open();
        Record(c, Committed("20260301T020000Z-0001", "s", T0, Artifact("a.tar", Copy("nas"))));
        Record(c, Committed("20260301T020000Z-0002", "s", T0.AddHours(1), Artifact("a.tar", Copy("nas")) with { Level = 1 }) with { Parent = "20260301T020000Z-0001", Level = 1 });
        Record(c, Committed("20260301T020000Z-0003", "s", T0.AddHours(2), Artifact("a.tar", Copy("nas")) with { Level = 2 }) with { Parent = "20260301T020000Z-0002", Level = 2 });
        var top = Assert.Single(c.RecentSnapshots("s", 1));
        Assert.Equal(2, top.Level);
        Assert.Equal(2, top.Artifacts[0].Level);
        Assert.Equal(["20260301T020000Z-0002", "20260301T020000Z-0001"], top.Ancestors.Select(x => x.Id));
        Assert.True(top.ChainComplete);
        Assert.Equal(["nas"], top.VerifiedTargets);
    }

    [Fact]
    public void Blobs_are_named_once_and_their_copies_upserted_updated_and_forgotten()
    {
        using var c = Open();
        c.BeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h");
        c.AddSnapshotBlob("20260301T020000Z-0001", "ab/cdef", 10);
        c.AddSnapshotBlob("20260301T020000Z-0001", "ab/cdef", 10); // at once while running, then again at the end: once
        c.SetBlobCopy("s", "ab/cdef", 10, 7, Copy("nas", CopyState.Failed, 0, "first"));
        c.SetBlobCopy("s", "ab/cdef", 10, 8, Copy("nas"), "age1recipient");
        c.SetBlobCopy("s", "ab/cdef", 10, 9, Copy("s3"));
        c.FinishSnapshot(Committed("20260301T020000Z-0001", "s", T0, Artifact("a.tar", Copy("nas"), Copy("s3"))) with { Blobs = [new BlobInfo("ab/cdef", 10, [])] });
        var blob = Assert.Single(c.Snapshot("20260301T020000Z-0001")!.Blobs);
        Assert.Equal(["nas", "s3"], blob.Copies.Select(x => x.Target));
        Assert.Equal(8, blob.StoredBytes["nas"]);
        Assert.Equal("age1recipient", blob.SealedTo["nas"]);
        Assert.Equal(["nas", "s3"], c.Snapshot("20260301T020000Z-0001")!.VerifiedTargets);
        c.UpdateBlobCopy("s", "ab/cdef", Copy("s3", CopyState.Corrupt, 5, "hash"));
        c.UpdateBlobCopy("s", "ab/unknown", Copy("s3", CopyState.Corrupt, 5, "hash")); // unknown: stays unknown
        Assert.Equal(["nas"], c.Snapshot("20260301T020000Z-0001")!.VerifiedTargets);
        c.DeleteBlobCopy("s", "ab/cdef", "nas");
        var copies = c.BlobCopies("s");
        var (file, raw, stored, sealedTo, copy) = Assert.Single(copies);
        Assert.Equal(("ab/cdef", 10L, 9L, "", "s3", CopyState.Corrupt), (file, raw, stored, sealedTo, copy.Target, copy.State));
        Assert.Empty(c.BlobCopies("other"));
    }

    [Fact]
    public void Copies_are_upserted_findings_spare_pruned_ones_and_a_verify_records_only_what_it_read()
    {
        using var c = Open();
        const string id = "20260301T020000Z-0001";
        Record(c, Committed(id, "s", T0, Artifact("a.tar", Copy("nas"), Copy("s3"), Copy("old"))));
        c.SetCopy(id, "a.tar", Copy("old", CopyState.Pruned, 1));
        c.RecordFindings([(id, "a.tar", Copy("nas", CopyState.Corrupt, 2, "hash")), (id, "a.tar", Copy("old", CopyState.Missing, 2))],
            () => c.AddEvent("error", "s", id, "restore found damage"));
        var copies = c.Snapshot(id)!.Artifacts[0].Copies.ToDictionary(x => x.Target);
        Assert.Equal(CopyState.Corrupt, copies["nas"].State);
        Assert.Equal(CopyState.Pruned, copies["old"].State);
        Assert.Equal("restore found damage", c.Events()[0].Message);

        c.SetCopies([(id, "a.tar", Copy("nas", CopyState.Verified, 3))]);
        var nasBefore = c.Snapshot(id)!.Artifacts[0].Copies.Single(x => x.Target == "nas");
        var s3Before = c.Snapshot(id)!.Artifacts[0].Copies.Single(x => x.Target == "s3");
        c.SetCopy(id, "a.tar", Copy("s3", CopyState.Pruned, 4)); // pruned while the verify ran
        var skipped = c.SetCopiesIfUnchanged([
            (id, "a.tar", Copy("nas", CopyState.Missing, 5), nasBefore),
            (id, "a.tar", Copy("s3", CopyState.Verified, 5), s3Before),
            (id, "a.tar", Copy("new", CopyState.Verified, 5), null),
            (id, "a.tar", Copy("nas", CopyState.Verified, 6), null),
        ]);
        Assert.Equal([(id, "a.tar", "s3"), (id, "a.tar", "nas")], skipped);
        copies = c.Snapshot(id)!.Artifacts[0].Copies.ToDictionary(x => x.Target);
        Assert.Equal(CopyState.Missing, copies["nas"].State);
        Assert.Equal(CopyState.Pruned, copies["s3"].State);
        Assert.Equal(CopyState.Verified, copies["new"].State);
    }

    [Fact]
    public void An_interrupted_run_is_failed_once_and_counted_unless_it_still_runs()
    {
        using var c = Open();
        c.BeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "vps1");
        c.BeginSnapshot("20260301T020000Z-0002", "t", "files", T0, "vps2");
        var failed = c.FailInterrupted(T0.AddHours(1), s => s.Id.EndsWith("0002", StringComparison.Ordinal));
        Assert.Equal(["20260301T020000Z-0001"], failed.Select(x => x.Id));
        var s = c.Snapshot("20260301T020000Z-0001")!;
        Assert.Equal(SnapshotState.Failed, s.State);
        Assert.Contains("vps1", s.Error, StringComparison.Ordinal);
        Assert.Equal(SnapshotState.Running, c.Snapshot("20260301T020000Z-0002")!.State);
        Assert.Empty(c.FailInterrupted(T0.AddHours(2), _ => true));
        Assert.Equal(1, c.RunCounts()[("s", "failed")]);
        Assert.False(c.RunCounts().ContainsKey(("t", "failed")));
    }

    [Fact]
    public void A_snapshot_recorded_failed_meanwhile_never_turns_committed()
    {
        using var c = Open();
        c.BeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "vps1");
        c.FailInterrupted(T0.AddHours(1)); // another agent found its lock free
        var e = Assert.Throws<BackupException>(() => c.FinishSnapshot(Committed("20260301T020000Z-0001", "s", T0, Artifact("a.tar", Copy("nas"))), "valid"));
        Assert.Contains("recorded failed meanwhile", e.Message, StringComparison.Ordinal);
        Assert.Equal(SnapshotState.Failed, c.Snapshot("20260301T020000Z-0001")!.State);
        Assert.Empty(c.Snapshot("20260301T020000Z-0001")!.Artifacts);
        Assert.False(c.RunCounts().ContainsKey(("s", "valid")));
    }

    [Fact]
    public void Old_failed_records_leave_with_their_artifacts_and_the_run_counter_keeps_them()
    {
        using var c = Open();
        var bad = Committed("20260301T020000Z-0001", "s", T0, Artifact("a.tar", Copy("nas"))) with { State = SnapshotState.Failed, Error = "no" };
        c.BeginSnapshot(bad.Id, "s", "files", T0, "h");
        c.AddSnapshotBlob(bad.Id, "ab/cd", 1);
        c.FinishSnapshot(bad, "failed");
        Record(c, Committed("20260301T020000Z-0002", "s", T0.AddHours(1)));
        Record(c, Committed("20260301T020000Z-0003", "s", T0.AddDays(3)) with { State = SnapshotState.Failed }, "failed");
        var pruned = c.PruneFailed(T0.AddDays(1));
        Assert.Equal(1, pruned["s"]);
        Assert.Equal(["20260301T020000Z-0002", "20260301T020000Z-0003"], c.Snapshots("s").Select(x => x.Id));
        Assert.Empty(c.PruneFailed(T0.AddDays(1)));
        var counts = c.RunCounts();
        Assert.Equal(2, counts[("s", "failed")]);
        Assert.Equal(1, counts[("s", "valid")]);
    }

    [Fact]
    public void Events_come_newest_first_up_to_the_limit()
    {
        using var c = Open();
        for (var i = 0; i < 5; i++)
        {
            c.AddEvent(i % 2 == 0 ? "info" : "error", i == 0 ? null : "s", null, $"event {i}");
        }

        var events = c.Events(3);
        Assert.Equal(["event 4", "event 3", "event 2"], events.Select(e => e.Message));
        Assert.Null(c.Events(100)[^1].Source);
        Assert.Equal("error", events[1].Level);
    }

    [Fact]
    public void Drills_round_trip_with_nulls_and_the_latest_ones_are_the_newest_and_the_newest_passed()
    {
        using var c = Open();
        var a = c.AddDrill(new DrillInfo(0, "s", "20260301T020000Z-0001", T0, true, 12.5, 3.25, 1800, true, null, "/e/1.json", "{\"a\":1}") { Target = "nas" });
        var b = c.AddDrill(new DrillInfo(0, "s", "20260301T020000Z-0002", T0.AddDays(1), false, 0.5, 0, null, null, "it broke", null, "{}"));
        var other = c.AddDrill(new DrillInfo(0, "t", "20260301T020000Z-0003", T0, true, 1, 1, null, false, null, null, "{}"));
        Assert.True(a < b && b < other);
        Assert.Equal([a, b], c.LatestDrills("s").Select(d => d.Id));
        var first = c.Drills("s")[0];
        Assert.Equal((true, 12.5, 3.25, 1800L, (bool?)true, "/e/1.json", "nas", T0), (first.Passed, first.Seconds, first.SetupSeconds, first.RtoSeconds, first.RtoMet, first.Evidence, first.Target, first.At));
        var second = c.Drills(snapshot: "20260301T020000Z-0002").Single();
        Assert.Equal((false, (long?)null, (bool?)null, "it broke", (string?)null), (second.Passed, second.RtoSeconds, second.RtoMet, second.Error, second.Target));
        Assert.False(c.Drills("t").Single().RtoMet);
        Assert.Equal(3, c.Drills().Count);
        Assert.Empty(c.LatestDrills("nobody"));
    }

    [Fact]
    public void Notification_state_is_upserted_and_deliveries_come_newest_first()
    {
        using var c = Open();
        Assert.Null(c.NotifiedState("mail", "s"));
        c.SetNotifiedState("mail", "s", "failing", T0);
        c.SetNotifiedState("mail", "s", "ok", T0.AddMinutes(1));
        Assert.Equal("ok", c.NotifiedState("mail", "s"));
        Assert.Null(c.NotifiedState("hook", "s"));
        c.AddNotification(new NotificationInfo(T0, "mail", "failing", "s", true, 1, null));
        c.AddNotification(new NotificationInfo(T0.AddMinutes(1), "mail", "digest", null, false, 3, "refused"));
        var list = c.Notifications(10);
        Assert.Equal(["digest", "failing"], list.Select(n => n.Event));
        Assert.Equal((false, 3, "refused", (string?)null), (list[0].Delivered, list[0].Attempts, list[0].Error, list[0].Subject));
        Assert.Single(c.Notifications(1));
    }

    [Fact]
    public void Rehearsals_round_trip_in_order()
    {
        using var c = Open();
        var one = c.AddRehearsal(new RehearsalInfo(0, "vps1-lost", T0, true, 61.5, 3600, true, null, "# runbook", "{}"));
        var two = c.AddRehearsal(new RehearsalInfo(0, "nas-lost", T0.AddDays(1), false, 7200, 3600, false, "slow", null, "{\"x\":2}"));
        Assert.True(one < two);
        Assert.Equal(["vps1-lost", "nas-lost"], c.Rehearsals().Select(r => r.Scenario));
        var back = c.Rehearsals("nas-lost").Single();
        Assert.Equal((false, 7200.0, 3600L, false, "slow", (string?)null, "{\"x\":2}", T0.AddDays(1)),
            (back.Passed, back.Seconds, back.RtoSeconds, back.RtoMet, back.Error, back.Runbook, back.Detail, back.At));
    }

    [Fact]
    public void Archive_files_are_recorded_once_their_copies_upserted_and_the_last_copy_takes_the_record()
    {
        using var c = Open();
        var history = new ArchiveInfo("pg", "00000002.history", "wal", 0, 0, 40, "h1", "wal/00000002.history.zst", T0, [Copy("nas")]) { Detail = "1\t0/3000000\tbefore" };
        c.RecordArchive(history);
        c.RecordArchive(history with { Detail = "changed", StoredFile = "wal/00000002.history.zst.age" });
        var seg = new ArchiveInfo("pg", "000000010000000000000003", "wal", 0x3000000, 0x4000000, 16 << 20, "h2", "wal/000000010000000000000003.zst", T0, [Copy("nas"), Copy("s3", CopyState.Failed, 0, "down")]);
        c.RecordArchive(seg);
        c.SetArchiveCopy("pg", seg.Name, Copy("nas"), 5000);
        c.SetArchiveCopy("pg", seg.Name, Copy("nas", CopyState.Verified, 1), -1); // a check that did not measure keeps the size
        var all = c.Archive("pg");
        Assert.Equal(["000000010000000000000003", "00000002.history"], all.Select(a => a.Name));
        Assert.Equal(("1\t0/3000000\tbefore", "wal/00000002.history.zst.age"), (all[1].Detail, all[1].StoredFile));
        var s = c.Archive("pg", seg.Name).Single();
        Assert.Equal((0x3000000L, 0x4000000L, 16L << 20), (s.Start, s.End, s.RawBytes));
        Assert.Equal(5000, s.StoredBytes["nas"]);
        Assert.Equal(0, s.StoredBytes["s3"]);
        Assert.Equal(["nas", "s3"], s.Copies.Select(x => x.Target));
        c.DeleteArchiveCopy("pg", seg.Name, "nas");
        Assert.Single(c.Archive("pg", seg.Name));
        c.DeleteArchiveCopy("pg", seg.Name, "s3");
        Assert.Empty(c.Archive("pg", seg.Name));
        Assert.Empty(c.Archive("other"));
    }

    [Fact]
    public void Markers_are_kept_in_order_replaced_by_seq_and_forgotten_before_a_position()
    {
        using var c = Open();
        c.RecordMarker("pg", new RecoveryMarker(2, 0x5000000, "m2", T0.AddMinutes(1)));
        c.RecordMarker("pg", new RecoveryMarker(1, 0x4000000, "m1", T0));
        c.RecordMarker("pg", new RecoveryMarker(2, 0x5000001, "m2b", T0.AddMinutes(2)));
        c.RecordMarker("other", new RecoveryMarker(1, 1, "o", T0));
        Assert.Equal([(1L, 0x4000000L, "m1"), (2L, 0x5000001L, "m2b")], c.Markers("pg").Select(m => (m.Seq, m.Position, m.Label)));
        c.DeleteMarkersBefore("pg", 0x5000000);
        Assert.Equal(["m2b"], c.Markers("pg").Select(m => m.Label));
        Assert.Single(c.Markers("other"));
    }

    [Fact]
    public void Machines_report_in_and_one_silent_past_its_promise_is_stale()
    {
        using var c = Open();
        c.ReportMachine("node-2", TimeSpan.FromMinutes(3), T0);
        c.ReportMachine("node-1", null, T0);
        c.ReportMachine("node-2", TimeSpan.FromMinutes(3), T0.AddMinutes(1));
        var machines = c.Machines();
        Assert.Equal(["node-1", "node-2"], machines.Select(m => m.Name));
        Assert.Equal((T0.AddMinutes(1), TimeSpan.FromMinutes(3), (long)Environment.ProcessId), (machines[1].SeenAt, machines[1].Every, machines[1].Pid));
        Assert.False(machines[1].IsStale(T0.AddMinutes(4)));
        Assert.True(machines[1].IsStale(T0.AddMinutes(4).AddSeconds(1)));
        Assert.False(machines[0].IsStale(T0.AddDays(30))); // no promise: never stale
        Assert.NotEmpty(machines[0].Version);
    }

    [Fact]
    public void Two_processes_beginning_the_same_id_get_it_once()
    {
        using var a = Open();
        using var b = Open();
        var wins = new[] { a, b }.AsParallel().Select(c => c.TryBeginSnapshot("20260301T020000Z-0001", "s", "files", T0, "h")).ToList();
        Assert.Equal(1, wins.Count(w => w));
    }

    /// <summary>Snapshots compared by value (records hold lists, which compare by reference).</summary>
    private sealed class SnapshotComparer : IEqualityComparer<SnapshotInfo?>
    {
        public static readonly SnapshotComparer Instance = new();

        public bool Equals(SnapshotInfo? x, SnapshotInfo? y) => Describe(x) == Describe(y);

        public int GetHashCode(SnapshotInfo? obj) => Describe(obj).GetHashCode(StringComparison.Ordinal);

        private static string Describe(SnapshotInfo? s) => s is null ? "" : System.Text.Json.JsonSerializer.Serialize(s);
    }
}
