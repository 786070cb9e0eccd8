using System.Globalization;
using Backstop.Core.FileSystem;

namespace Backstop.Tests.Util;

public sealed class StaleTests
{
    private static readonly string Pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

    [Fact]
    public void A_name_of_this_process_is_alive_and_one_of_a_dead_process_is_gone()
    {
        Assert.False(Stale.OwnerIsGone(Stale.Name(".x-"), ".x-"));
        Assert.True(Stale.OwnerIsGone(".x-999999999-s12-0a0b0c0d", ".x-")); // no such process
        Assert.False(Stale.OwnerIsGone(".y-999999999-s12-0a0b0c0d", ".x-")); // not of this prefix
    }

    [Fact]
    public void A_pid_reused_by_another_process_is_told_apart_by_its_start_time()
    {
        // In a container every run is pid 1: a killed run's leftovers carry this very pid, with another start time.
        Assert.True(Stale.OwnerIsGone($".x-{Pid}-s{Stale.StartOf(Environment.ProcessId)!.Value + 1}-0a0b0c0d", ".x-"));
        var other = Stale.StartOf(1)!.Value + 1;
        Assert.True(Stale.OwnerIsGone($".x-1-s{other}-0a0b0c0d", ".x-")); // pid 1 runs here, but not the one that started then
    }

    [Fact]
    public void A_name_made_before_start_times_is_judged_by_its_pid_as_it_was()
    {
        Assert.False(Stale.OwnerIsGone($".x-{Pid}-0a0b0c0d", ".x-"));
        Assert.True(Stale.OwnerIsGone(".x-999999999-deadbeef", ".x-"));
    }
}
