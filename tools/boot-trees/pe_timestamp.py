# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Sets a PE file's time stamp and recomputes its checksum.

objcopy (binutils 2.40) stamps the PE header with the clock and ignores
SOURCE_DATE_EPOCH, so two builds of the same UKI differ in those 8
bytes; with a fixed stamp a rebuild writes the same file.

    pe_timestamp.py FILE SECONDS
"""

import struct
import sys


def checksum(data, field):
    """The PE checksum (as imagehlp's CheckSumMappedFile computes it)."""
    total = 0
    padded = data + b'\0' * (len(data) % 2)
    for i in range(0, len(padded), 2):
        if field <= i < field + 4:
            continue
        total += struct.unpack_from('<H', padded, i)[0]
        total = (total & 0xffff) + (total >> 16)
    total = (total & 0xffff) + (total >> 16)
    return total + len(data)


def main():
    path, stamp = sys.argv[1], int(sys.argv[2])
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    pe = struct.unpack_from('<I', data, 0x3c)[0]
    if data[pe:pe + 4] != b'PE\0\0':
        sys.exit('%s is not a PE file' % path)
    # COFF header: Machine, NumberOfSections, TimeDateStamp; the
    # optional header's CheckSum is 64 bytes into it (PE32 and PE32+).
    struct.pack_into('<I', data, pe + 8, stamp)
    field = pe + 24 + 64
    struct.pack_into('<I', data, field, checksum(bytes(data), field))
    with open(path, 'wb') as f:
        f.write(data)


if __name__ == '__main__':
    main()
