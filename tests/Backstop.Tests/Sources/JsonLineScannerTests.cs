using System.Text;
using Backstop.Core.Plugins;
using Backstop.Sources.CouchDb;

namespace Backstop.Tests.Sources;

public class JsonLineScannerTests
{
    private static long Scan(string text, int chunk = 3)
    {
        var scanner = new JsonLineScanner();
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            scanner.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        scanner.Finish();
        return scanner.Documents;
    }

    [Fact]
    public void Documents_are_counted_across_any_chunking()
    {
        const string lines = """
            {"_id":"a","_rev":"1-x","n":[1,2,{"k":"v"}],"s":"q\"uote \\ \u00e9"}
            {"_rev":"2-y", "_id" : "b", "_attachments":{"f":{"data":"AAAA"}}}

            {"_id":"c","_rev":"1-z"}
            """;
        foreach (var chunk in new[] { 1, 2, 7, 4096 })
        {
            Assert.Equal(3, Scan(lines, chunk));
        }
    }

    [Theory]
    [InlineData("{\"_id\":\"a\",\"_rev\":\"1\"", "line 1 is cut short")]
    [InlineData("{\"_id\":\"a\",\"_rev\":\"1\",\"s\":\"open\n", "line 1 is cut short inside a string")]
    [InlineData("{\"_id\":\"a\"}\n", "line 1 is a JSON value without _id and _rev")]
    [InlineData("{\"x\":{\"_id\":\"a\",\"_rev\":\"1\"}}\n", "without _id and _rev")]
    [InlineData("[1,2]\n", "line 1 is not a JSON object")]
    [InlineData("{\"_id\":\"a\",\"_rev\":\"1\"]\n", "does not match")]
    [InlineData("{\"_id\":\"a\",\"_rev\":\"1\"} {}\n", "has more after its object")]
    [InlineData("{\"_id\":\"a\",\"_rev\":\"1\"}\n{\"_id\":\"b\",\"_rev\":\"1\",\"x\":\"a\u0001b\"}\n", "line 2 holds a raw control character")]
    [InlineData("{\"_id\":\"a\\\n\",\"_rev\":\"1\"}\n", "line 1 is cut short inside a string")]
    [InlineData("{\"_id\":\"a\\q\",\"_rev\":\"1\"}\n", "holds an invalid escape \\q")]
    public void Damaged_lines_are_refused_naming_the_line(string text, string message) =>
        Assert.Contains(message, Assert.Throws<BackupException>(() => Scan(text)).Message, StringComparison.Ordinal);
}
