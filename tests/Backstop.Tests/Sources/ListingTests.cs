using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Sources.Trees;
using CsCheck;

namespace Backstop.Tests.Sources;

/// <summary>A level's listing: written in walk order, read back folder by folder, skipping the folders a walk no longer has.</summary>
public sealed class ListingTests
{
    /// <summary>Names as raw strings: any byte but '/' and NUL, so '.', '-', ' ' and bytes above 0x7F sort around '/'.</summary>
    private static readonly Gen<string> Name = Gen.Byte[1, 255].Where(b => b != (byte)'/').Array[1, 6].Select(b => RawFs.FromBytes(b));

    private static readonly Gen<Listing.Stat> StatGen =
        Gen.Select(Gen.UInt[0, 0xFFFF], Gen.Long[0, long.MaxValue], Gen.Long, Gen.Long, Gen.ULong).Select((m, s, mt, ct, ino) => new Listing.Stat(m, s, mt, ct, ino));

    /// <summary>A tree: each folder's entries and subfolders, flattened in walk order (a folder, then its subfolders depth-first, each in byte order).</summary>
    private static readonly Gen<List<(string Folder, Dictionary<string, Listing.Stat> Entries)>> Tree =
        Gen.Select(Name.Array[0, 6], Gen.Select(Name, StatGen).Array[0, 5], Gen.Int[0, 3]).Array[1, 12].Select(specs =>
        {
            var folders = new List<(string, Dictionary<string, Listing.Stat>)>();
            var queue = new Queue<(string Path, int Depth)>();
            var next = 0;
            void Add(string path, int depth)
            {
                var spec = specs[next++ % specs.Length];
                var entries = new Dictionary<string, Listing.Stat>(StringComparer.Ordinal);
                foreach (var (n, st) in spec.Item2)
                {
                    entries[n] = st;
                }

                folders.Add((path, entries));
                if (depth < 3)
                {
                    foreach (var sub in spec.Item1.Distinct(StringComparer.Ordinal).Where(s => !entries.ContainsKey(s)).Take(spec.Item3))
                    {
                        Add(path + "/" + sub, depth + 1);
                    }
                }
            }

            Add("/root", 0);
            folders.Sort((a, b) => Listing.Compare(a.Item1, b.Item1));
            return folders;
        });

    [Fact]
    public void What_is_written_in_walk_order_reads_back_folder_by_folder_even_when_folders_are_skipped()
    {
        Gen.Select(Tree, Gen.Bool.Array[12]).Sample((tree, keep) =>
        {
            var stream = new MemoryStream();
            using (var writer = new Listing.Writer(new NonClosing(stream)))
            {
                foreach (var (folder, entries) in tree)
                {
                    writer.Folder(folder);
                    foreach (var (name, st) in entries)
                    {
                        writer.Entry(name, st);
                    }
                }
            }

            stream.Position = 0;
            using var reader = new Listing.Reader(stream);
            for (var i = 0; i < tree.Count; i++)
            {
                if (!keep[i % keep.Length] && i > 0)
                {
                    continue; // a folder the next walk no longer has: the reader passes over it
                }

                var read = reader.Folder(tree[i].Folder);
                Assert.Equal(tree[i].Entries.OrderBy(e => e.Key, StringComparer.Ordinal), read.OrderBy(e => e.Key, StringComparer.Ordinal));
            }

            Assert.Empty(reader.Folder("/zzz-after-everything"));
        });
    }

    [Fact]
    public void Walk_order_puts_a_folders_content_before_its_next_sibling_whatever_the_bytes()
    {
        // "a" < "a/z" < "a-b" < "a.txt" < "a\xE9": '/' sorts before every other byte, so a folder's subtree comes before a sibling.
        string[] walked = ["a", "a/z", "a-b", "a.txt", RawFs.FromBytes([(byte)'a', 0xE9])];
        Assert.Equal(walked, walked.Reverse().Order(Comparer<string>.Create(Listing.Compare)));
    }

    [Fact]
    public void An_entry_changed_just_before_it_was_read_is_listed_so_that_the_next_level_reads_it_again()
    {
        const long Now = 1_800_000_000_000_000_000;
        var racy = new FileStatus(1, 42, 1, 0x81A4, 0, 0, 10, 1_800_000_000, 0) { CtimeSeconds = 1_799_999_999, CtimeNanos = 950_000_000 };
        Assert.Equal(0, Listing.Stat.Listed(racy, Now).CtimeNs); // changed 50 ms before: never equal to what the next walk sees
        Assert.NotEqual(Listing.Stat.Of(racy), Listing.Stat.Listed(racy, Now));

        var settled = racy with { MtimeSeconds = 1_799_999_998, CtimeSeconds = 1_799_999_998, CtimeNanos = 0 };
        Assert.Equal(Listing.Stat.Of(settled), Listing.Stat.Listed(settled, Now));
    }

    [Fact]
    public void A_damaged_listing_is_refused_by_name_never_trusted()
    {
        foreach (var bad in new[] { "not a listing\n", "backstop listing 1\nX", "backstop listing 1\nD/root\0Ezz 1 2 3 4 name\0", "backstop listing 1\nD/root" })
        {
            using var reader = new Listing.Reader(new MemoryStream(System.Text.Encoding.ASCII.GetBytes(bad)));
            var e = Assert.Throws<BackupException>(() => reader.Folder("/root"));
            Assert.Contains("listing", e.Message, StringComparison.Ordinal);
        }
    }

    private sealed class NonClosing(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    }
}
