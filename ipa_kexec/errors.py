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

"""Errors of the kexec agent extension, each carrying a reason code."""

from ironic_python_agent import errors

from ironic_kexec import protocol


class KexecError(errors.RESTError):
    """A kexec command failed; ``details`` carries the reason code.

    The conductor reads the reason with
    :func:`ironic_kexec.protocol.reason_from_error` to decide whether, and
    why, it falls back to a power cycle.
    """

    message = 'kexec command failed'

    def __init__(self, reason, message, **details):
        super(KexecError, self).__init__(
            protocol.error_details(reason, message, **details))
        self.reason = reason
        self.reason_message = message


class ProtocolMismatch(KexecError):
    """The conductor speaks a protocol version this agent does not serve.

    The details carry this agent's version, for the conductor's record.
    """

    def __init__(self, conductor_version):
        super(ProtocolMismatch, self).__init__(
            protocol.REASON_PROTOCOL_MISMATCH,
            'the conductor speaks kexec protocol version %(conductor)s, '
            'this agent serves versions %(min)d to %(max)d: build the agent '
            'ramdisk from the conductor\'s release of ironic-kexec' %
            {'conductor': conductor_version,
             'min': protocol.MIN_PROTOCOL_VERSION,
             'max': protocol.PROTOCOL_VERSION},
            protocol_version=protocol.PROTOCOL_VERSION)


class UnsafePath(KexecError):
    def __init__(self, message):
        super(UnsafePath, self).__init__(protocol.REASON_UNSAFE_PATH,
                                         message)


class TooLarge(KexecError):
    """One file, directory or value is over its bound.

    The source that met it is skipped and the next one is tried.
    """

    def __init__(self, message):
        super(TooLarge, self).__init__(protocol.REASON_TOO_LARGE, message)


class TooComplex(KexecError):
    """Nesting or expansion over its bound, within one source."""

    def __init__(self, message):
        super(TooComplex, self).__init__(protocol.REASON_TOO_COMPLEX,
                                         message)


TOO_LARGE = protocol.REASON_TOO_LARGE
TOO_COMPLEX = protocol.REASON_TOO_COMPLEX


class BudgetExhausted(KexecError):
    """The discovery's own budget is spent: no further source is tried."""


class NotFoundInImage(Exception):
    """A path does not exist inside the image (not an error by itself)."""
