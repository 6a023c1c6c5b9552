"""python forward.py PORT HOST: accept TCP connections on 127.0.0.1:PORT and pass each on
to HOST:PORT, both ways, until either side closes. The class check's sandbox runs it in
the container whose network the students' containers share: a worker that connects to
localhost, as the tutorials' do, reaches the broker, and nothing else."""

import asyncio
import sys

READY = "forwarding"


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port, host):
    async def serve(client_reader, client_writer):
        try:
            broker_reader, broker_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print(READY, flush=True)  # the sandbox starts the copies once it reads this
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
