using Backstop.Core.Config;
using Backstop.Core.Recovery;
using Backstop.Tests.Support;

namespace Backstop.Tests.Config;

/// <summary>Machines, needs and the recovery block: where things live, what a scenario loses, and the errors a typo gets.</summary>
public class RecoveryConfigTests
{
    private static readonly TestPlugins Plugins = new();

    private static BackstopConfig Parse(string yaml) => ConfigLoader.Parse(yaml, "/etc/backstop/backstop.yaml", Plugins.Registry);

    private static string Estate(string recovery, string needs = "") => $"""
        machine: vps1
        targets:
          - {"{"} name: disk, kind: local, path: /var/backups {"}"}
          - {"{"} name: nas, kind: local, path: /mnt/nas, machine: nas {"}"}
        sources:
          - {"{"} name: web, kind: files, paths: [/srv/web] {"}"}
          - {"{"} name: db, kind: command, command: [pg_dump, app], machine: vps2{needs} {"}"}
          - {"{"} name: etc, kind: files, paths: [/etc], machine: vps2, targets: [disk] {"}"}
        recovery:
        {recovery}
        """;

    [Fact]
    public void Sources_and_local_targets_live_on_the_configuration_s_machine_unless_they_say_otherwise()
    {
        var c = Parse(Estate("  scenarios: [{name: node-vps2, rto: 4h, lost: {machines: [vps2]}}]"));
        Assert.Equal("vps1", c.Machine);
        Assert.Equal(["vps1", "vps2", "vps2"], c.Sources.Select(s => s.Machine));
        Assert.Equal(["vps1", "nas"], c.Targets.Select(t => t.Machine));
        var scenario = Assert.Single(c.Recovery.Scenarios);
        Assert.Equal(TimeSpan.FromHours(4), scenario.Rto);
        Assert.Equal(2, c.Recovery.Parallel);
    }

    [Fact]
    public void A_plan_loses_the_machine_s_sources_keeps_the_copies_elsewhere_and_names_what_nothing_brings_back()
    {
        var c = Parse(Estate("  scenarios: [{name: node-vps2, rto: 4h, lost: {machines: [vps2]}}, {name: all, rto: 8h, lost: {machines: all, targets: [nas]}}]"));
        var plan = RecoveryPlan.For(c, Plugins.Registry, c.Recovery.Scenarios[0]);
        Assert.Equal(["db", "etc"], plan.Restores.Select(r => r.Source.Name));
        Assert.Equal(["disk", "nas"], plan.Restores[0].SurvivingTargets); // the disk is on vps1, which survives
        Assert.Equal(["disk"], plan.Restores[1].SurvivingTargets);
        Assert.Empty(plan.Unrecoverable);

        var everything = RecoveryPlan.For(c, Plugins.Registry, c.Recovery.Scenarios[1]);
        Assert.Equal(["disk", "nas"], everything.LostTargets.Order());
        Assert.Equal(["web", "db", "etc"], everything.Unrecoverable.Select(u => u.Source));
        Assert.Equal("all: etc has all 1 copy on vps1: nothing survives; add a target that lives elsewhere (a NAS, a bucket)", everything.Unrecoverable[2].Reason);
    }

    [Fact]
    public void Without_needs_the_kinds_stages_order_the_recovery_and_needs_override_them()
    {
        var c = Parse(Estate("  scenarios: [{name: all, rto: 8h, lost: {machines: all}}]").Replace("targets: [disk]", "targets: [nas]", StringComparison.Ordinal));
        var plan = RecoveryPlan.For(c, Plugins.Registry, c.Recovery.Scenarios[0]);
        Assert.Equal(["db", "web", "etc"], plan.Restores.Select(r => r.Source.Name)); // data before files
        Assert.Equal(["db"], plan.Restores[1].Needs);

        var needing = Parse(Estate("  scenarios: [{name: all, rto: 8h, lost: {machines: all}}]", ", needs: [web]").Replace("targets: [disk]", "targets: [nas]", StringComparison.Ordinal));
        var reordered = RecoveryPlan.For(needing, Plugins.Registry, needing.Recovery.Scenarios[0]);
        Assert.Equal("web", reordered.Restores[0].Source.Name);
        Assert.Equal(["web"], reordered.Restores.Single(r => r.Source.Name == "db").Needs);
    }

    [Theory]
    [InlineData("  scenarios: [{name: x, rto: 4h, lost: {machines: [vps9]}}]", "recovery.scenarios[0].lost.machines: no source or target lives on a machine named 'vps9'; machines: nas, vps1, vps2")]
    [InlineData("  scenarios: [{name: x, rto: 4h, lost: {targets: [usb]}}]", "recovery.scenarios[0].lost.targets: no target is named 'usb'; defined targets: disk, nas")]
    [InlineData("  scenarios: [{name: x, lost: {machines: [vps1]}}]", "scenario 'x': rto is required")]
    [InlineData("  scenarios: [{name: x, rto: 4h, lost: {}}]", "scenario 'x' loses nothing")]
    [InlineData("  scenarios: [{name: x, rto: 4h, lost: {machines: all}}, {name: x, rto: 1h, lost: {machines: all}}]", "a scenario named 'x' is already defined")]
    [InlineData("  identities: [\"AGE-SECRET-KEY-1XYZ\"]", "identities are files")]
    [InlineData("  parralel: 2", "recovery.parralel: unknown key (did you mean 'parallel'?)")]
    public void A_wrong_recovery_block_is_refused_where_it_is(string recovery, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(Estate(recovery)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("/etc/backstop/backstop.yaml:", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("XYZ", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(", needs: [nothing]", "source 'db': needs 'nothing', which no source is named")]
    [InlineData(", needs: [db]", "source 'db': needs names the source itself")]
    public void Needs_must_name_another_source(string needs, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(Estate("  parallel: 2", needs)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Needs_that_go_round_in_a_circle_are_refused_naming_the_circle()
    {
        var yaml = Estate("  parallel: 2", ", needs: [web]").Replace("paths: [/srv/web]", "paths: [/srv/web], needs: [etc]", StringComparison.Ordinal)
            .Replace("targets: [disk]", "targets: [disk], needs: [db]", StringComparison.Ordinal);
        var e = Assert.Throws<ConfigException>(() => Parse(yaml));
        Assert.Contains("needs go round in a circle: web → etc → db → web", e.Message, StringComparison.Ordinal);
    }
}
