#!/usr/bin/env python3
"""A second, independent implementation of what images/builder/src/tdvf.rs computes, written
from the documents rather than from that code: Intel's "TDX Virtual Firmware Design Guide"
(section 11: the OVMF GUIDed table, the TDVF descriptor and its 32-byte section entries) and the
TDX module ABI (TDH.MEM.PAGE.ADD and TDH.MR.EXTEND each hash a 128-byte block: the operation's
name padded to 16 bytes, then the GPA; MR.EXTEND then hashes the 256-byte chunk). KVM adds a
measured region page by page, extending each page's chunks right after adding it.

Usage: tdvf_measure.py FIRMWARE.fd  ->  prints "mrtd <hex>" and "cfv <hex>".
"""
import hashlib
import struct
import sys
import uuid

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")


def main(path):
    fw = open(path, "rb").read()
    end = len(fw) - 32
    if uuid.UUID(bytes_le=fw[end - 16:end]) != FOOTER:
        sys.exit("no OVMF table footer")
    (total,) = struct.unpack_from("<H", fw, end - 18)
    table = fw[end - total:end - 18]
    pos, meta = len(table), None
    while pos >= 18:
        guid = uuid.UUID(bytes_le=table[pos - 16:pos])
        (length,) = struct.unpack_from("<H", table, pos - 18)
        if guid == TDX_METADATA:
            (from_end,) = struct.unpack_from("<I", table, pos - 22)
            meta = len(fw) - from_end
            break
        pos -= length
    if meta is None or fw[meta:meta + 4] != b"TDVF":
        sys.exit("no TDVF metadata")
    (count,) = struct.unpack_from("<I", fw, meta + 12)
    mrtd = hashlib.sha384()
    cfv = None
    for i in range(count):
        offset, raw, gpa, size, kind, attrs = struct.unpack_from("<IIQQII", fw, meta + 16 + 32 * i)
        for page in range(size // 4096):
            page_gpa = gpa + page * 4096
            if not attrs & 2:  # not PAGE_AUG
                mrtd.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", page_gpa) + bytes(104))
            if attrs & 1:  # MR_EXTEND
                for chunk in range(16):
                    at = offset + page * 4096 + chunk * 256
                    mrtd.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", page_gpa + chunk * 256) + bytes(104))
                    mrtd.update(fw[at:at + 256])
        if kind == 1:
            cfv = hashlib.sha384(fw[offset:offset + raw]).hexdigest()
    print("mrtd", mrtd.hexdigest())
    print("cfv", cfv)


if __name__ == "__main__":
    main(sys.argv[1])
