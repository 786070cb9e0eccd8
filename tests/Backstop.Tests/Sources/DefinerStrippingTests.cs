using System.Text;
using Backstop.Sources.MySql;

namespace Backstop.Tests.Sources;

/// <summary>A dump's DEFINER clauses are taken out line by line; data passes untouched, however long.</summary>
public sealed class DefinerStrippingTests
{
    private static string Through(string dump, int readSize = 7)
    {
        using var stream = new DefinerStrippingStream(new MemoryStream(Encoding.Latin1.GetBytes(dump)));
        var output = new MemoryStream();
        var buffer = new byte[readSize];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            output.Write(buffer, 0, n);
        }

        return Encoding.Latin1.GetString(output.ToArray());
    }

    [Theory]
    [InlineData("/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n", "/*!50013  SQL SECURITY DEFINER */\n")]
    [InlineData("CREATE DEFINER=`admin`@`%` PROCEDURE `p`()\n", "CREATE  PROCEDURE `p`()\n")]
    [InlineData("/*!50003 CREATE*/ /*!50017 DEFINER=`o``dd`@`10.0.0.%`*/ /*!50003 TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1 */;;\n",
        "/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1 */;;\n")]
    [InlineData("CREATE DEFINER='root'@'localhost' FUNCTION f() RETURNS INT RETURN 1", "CREATE  FUNCTION f() RETURNS INT RETURN 1")]
    public void Definer_clauses_are_removed_and_the_rest_of_the_line_is_kept(string line, string expected)
    {
        Assert.Equal(expected, Through(line));
        Assert.Equal(expected, Through(line, 4096));
    }

    [Fact]
    public void Data_lines_pass_untouched_even_when_they_name_a_definer_and_every_byte_round_trips()
    {
        var bytes = string.Concat(Enumerable.Range(0, 256).Select(i => (char)i)).Replace("\n", "", StringComparison.Ordinal);
        var insert = "INSERT INTO `t` VALUES ('DEFINER=`root`@`localhost`','" + bytes + "'," + new string('x', 300_000) + ");\n";
        var dump = "-- dump\n" + insert + "CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT 1;\n" + insert;
        Assert.Equal("-- dump\n" + insert + "CREATE  VIEW v AS SELECT 1;\n" + insert, Through(dump, 1000));
    }

    [Fact]
    public void A_line_longer_than_the_limit_passes_as_it_is_and_the_next_line_is_read_again()
    {
        var longLine = "CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT '" + new string('y', DefinerStrippingStream.MaxLine + 10) + "';\n";
        var dump = longLine + "CREATE DEFINER=`root`@`localhost` VIEW w AS SELECT 1;\n";
        Assert.Equal(longLine + "CREATE  VIEW w AS SELECT 1;\n", Through(dump, 65536));
    }
}
