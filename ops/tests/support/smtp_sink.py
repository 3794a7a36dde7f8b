"""A local SMTP sink for the mail tests (needs aiosmtpd: Debian's python3-aiosmtpd).

Usage: smtp_sink.py FOLDER

Listens on a free loopback port and prints it on the first line of stdout.
Every accepted message is written to FOLDER/NNNN.eml exactly as received.
Recipients whose address starts with "bounce" are refused with a permanent
550, so tests can exercise a server's final "no". Runs until killed.
"""

import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, "%04d.eml" % self.count)
        # Written aside and renamed, so a test never reads half a message.
        with open(path + ".partial", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".partial", path)
        return "250 Message accepted for delivery"


async def main(folder):
    os.makedirs(folder, exist_ok=True)
    handler = Sink(folder)
    loop = asyncio.get_running_loop()
    # A fixed hostname: the default looks up the machine's FQDN, which can stall.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test"), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
