"""The pure core: no sockets, files, threads or asyncio. Plain values in, plain values out."""
