using Backstop.Sources.Trees;

namespace Backstop.Tests.Sources;

public class GlobTests
{
    [Theory]
    [InlineData("*.log", "/srv/app/x.log", true)]
    [InlineData("*.log", "/srv/app/logs/deep/y.log", true)]
    [InlineData("*.log", "/srv/app/x.log.gz", false)]
    [InlineData("node_modules", "/srv/app/node_modules", true)]
    [InlineData("node_modules", "/srv/app/node_modules_old", false)]
    [InlineData("cache/**", "/srv/app/cache/a/b", true)]
    [InlineData("/srv/app/tmp", "/srv/app/tmp", true)]
    [InlineData("/srv/app/tmp", "/other/srv/app/tmp", false)]
    [InlineData("file-?.txt", "/d/file-1.txt", true)]
    [InlineData("file-[ab].txt", "/d/file-b.txt", true)]
    [InlineData("file-[!ab].txt", "/d/file-b.txt", false)]
    public void Patterns_match_as_documented(string pattern, string path, bool expected) =>
        Assert.Equal(expected, new Glob(pattern).Matches(path));
}
