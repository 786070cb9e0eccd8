using System.Runtime.InteropServices;

namespace Backstop.Core.Sealing;

/// <summary>The system's libzstd (Debian <c>libzstd1</c>) through its streaming API.</summary>
internal static unsafe partial class ZstdNative
{
    private const string Lib = "libzstd.so.1";

    internal const int CompressionLevel = 100;
    internal const int ChecksumFlag = 201;
    internal const int NbWorkers = 400;
    internal const int JobSize = 401;

    internal const int EndContinue = 0;
    internal const int EndFlush = 1;
    internal const int EndEnd = 2;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Buffer
    {
        public byte* Data;
        public nuint Size;
        public nuint Pos;
    }

    [LibraryImport(Lib, EntryPoint = "ZSTD_createCCtx")]
    internal static partial nint CreateCCtx();

    [LibraryImport(Lib, EntryPoint = "ZSTD_freeCCtx")]
    internal static partial nuint FreeCCtx(nint cctx);

    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_setParameter")]
    internal static partial nuint SetParameter(nint cctx, int param, int value);

    [LibraryImport(Lib, EntryPoint = "ZSTD_compressStream2")]
    internal static partial nuint CompressStream2(nint cctx, Buffer* output, Buffer* input, int endOp);

    [LibraryImport(Lib, EntryPoint = "ZSTD_createDCtx")]
    internal static partial nint CreateDCtx();

    [LibraryImport(Lib, EntryPoint = "ZSTD_freeDCtx")]
    internal static partial nuint FreeDCtx(nint dctx);

    [LibraryImport(Lib, EntryPoint = "ZSTD_decompressStream")]
    internal static partial nuint DecompressStream(nint dctx, Buffer* output, Buffer* input);

    [LibraryImport(Lib, EntryPoint = "ZSTD_isError")]
    internal static partial uint IsError(nuint code);

    [LibraryImport(Lib, EntryPoint = "ZSTD_getErrorName")]
    internal static partial nint GetErrorName(nuint code);

    [LibraryImport(Lib, EntryPoint = "ZSTD_versionString")]
    internal static partial nint VersionString();

    internal static nuint Check(nuint code, string what)
    {
        if (IsError(code) != 0)
        {
            throw new InvalidDataException($"zstd {what}: {Marshal.PtrToStringUTF8(GetErrorName(code))}");
        }

        return code;
    }

    internal static string Version()
    {
        try
        {
            return Marshal.PtrToStringUTF8(VersionString()) ?? "?";
        }
        catch (DllNotFoundException)
        {
            throw new Plugins.BackupException("libzstd.so.1 is not installed: install the libzstd1 package (apt-get install libzstd1)");
        }
    }
}
