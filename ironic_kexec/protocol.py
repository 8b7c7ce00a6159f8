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

"""The conductor/agent wire protocol of the ``kexec`` agent extension.

This module is the single definition of what the Ironic conductor
(``ironic_kexec``) and the ironic-python-agent extension (``ipa_kexec``)
say to each other. It imports neither Ironic nor the agent, so that each
side can import it without pulling in the other.

Commands are sent as ``POST /v1/commands/`` with the name
``kexec.<command>`` and a JSON object of parameters.

Protocol versions
-----------------

:data:`PROTOCOL_VERSION` is the version this release speaks; each
version adds to the previous one, none removes anything:

1. ``kexec.get_boot_entry``, ``kexec.load`` and ``kexec.execute``; the
   diskless loads by URL (``kernel_url``, ``initrd_url``, their
   checksums, ``checksum_algo``, ``max_size``). Agents of version 1 know
   nothing of versions: they neither take ``protocol_version`` nor
   report it.
2. ``deny`` rules on ``kexec.load``; ``protocol_version`` as a parameter
   of ``kexec.load`` and a field of its result; ``kexec.get_version``;
   the reason ``protocol_mismatch``.

The compatibility rule: the conductor sends its own version with every
``kexec.load``. An agent serves every conductor version from
:data:`MIN_PROTOCOL_VERSION` to its own :data:`PROTOCOL_VERSION` (a
missing ``protocol_version`` is a conductor of version 1) and refuses
any other with reason ``protocol_mismatch`` before it looks at the other
parameters, whose names a newer conductor may have added. An agent of
version 1 refuses the unknown ``protocol_version`` parameter itself; the
conductor takes that refusal as ``protocol_mismatch`` too. The conductor
never retries with fewer parameters (it must not drop ``deny`` rules the
agent would then not check): meeting an older agent falls back to the
power cycle (or fails a ``required`` deploy) with that reason, and the
cure is an agent ramdisk of the conductor's release. An agent newer than
the conductor serves it. A ``kexec.load`` result
without ``protocol_version`` is taken as coming from a version 1 agent;
the conductor refuses to go on when the agent's version is lower than
the version its request needed (see :func:`version_needed`), since such
an agent cannot have honoured the newer parameters.

``kexec.get_version`` (synchronous)
    No parameters. Result: ``protocol_version`` (the agent's) and
    ``min_protocol_version`` (the oldest conductor version it serves).
    Not needed on the deploy path (every ``kexec.load`` result carries
    the version): for diagnostics and for conductors that want to know
    before they load. An agent of version 1 answers "unknown command".

``kexec.get_boot_entry`` (synchronous)
    Discovery only, nothing is loaded. Parameters: those of ``load`` but
    the diskless ones, ``deny`` and ``protocol_version``, plus
    ``root_path`` (an already mounted root filesystem). Result: a
    :data:`BOOT_ENTRY_FIELDS` mapping.

``kexec.load`` (asynchronous)
    Discovery (or the explicit ``kernel``/``initrd``/``cmdline``), a
    preflight, then ``kexec --load``. Result: the boot entry plus
    :data:`LOAD_FIELDS`. A failure carries a :data:`REASONS` code in the
    command error's ``details`` (see :func:`error_details`).
    With ``kernel_url`` (diskless deploys) the kernel and initrd are
    downloaded instead of discovered: ``kernel_checksum`` (and
    ``initrd_checksum`` with ``initrd_url``) and the full ``cmdline`` are
    then required, ``root_uuid``/``kernel``/``initrd`` refused; the
    result's ``source`` is ``url`` and its timings have ``download``.

    ``deny`` carries the hardware deny rules that the conductor could not
    decide from the node's inspection data (see :func:`deny_rule_matches`):
    the agent checks them against the running hardware before it loads
    anything, and refuses with reason ``denied``.

    ``protocol_version`` is the conductor's version; the agent refuses
    one it does not serve with reason ``protocol_mismatch`` before
    anything else (see "Protocol versions" above). The result's
    ``protocol_version`` is the agent's.

``kexec.execute`` (asynchronous)
    Flushes the disks, answers, then kexecs into the loaded kernel from a
    detached process after ``delay`` seconds. The agent stops answering
    for good after that.
"""

import fnmatch

EXTENSION = 'kexec'

# The protocol version of this release (see "Protocol versions" above),
# and the oldest conductor version an agent of this release serves.
PROTOCOL_VERSION = 2
MIN_PROTOCOL_VERSION = 1
# What each version added, for messages and documentation.
PROTOCOL_VERSIONS = {
    1: 'get_boot_entry, load and execute; diskless loads by URL',
    2: 'deny rules; protocol_version; get_version',
}

# Command names, without the extension prefix.
GET_BOOT_ENTRY = 'get_boot_entry'
LOAD = 'load'
EXECUTE = 'execute'
GET_VERSION = 'get_version'


def command_name(command):
    """The name the agent API expects, e.g. ``kexec.load``."""
    return '%s.%s' % (EXTENSION, command)


# Parameters of get_boot_entry and load. All are optional.
PARAM_ROOT_UUID = 'root_uuid'            # partition image's root fs UUID
PARAM_ROOT_PATH = 'root_path'            # get_boot_entry only: mounted root
PARAM_KERNEL = 'kernel'                  # explicit, path inside the image
PARAM_INITRD = 'initrd'                  # explicit, path inside the image
PARAM_CMDLINE = 'cmdline'                # explicit, replaces discovery's
PARAM_EXTRA_ARGS = 'extra_args'          # appended to the command line
PARAM_BOOT_MODE = 'boot_mode'            # 'bios' or 'uefi', informational
PARAM_FILE_SYSCALL = 'file_syscall'      # one of FILE_SYSCALL_MODES
# Diskless (ramdisk-kexec): artifacts downloaded instead of discovered.
PARAM_KERNEL_URL = 'kernel_url'
PARAM_INITRD_URL = 'initrd_url'
PARAM_KERNEL_CHECKSUM = 'kernel_checksum'
PARAM_INITRD_CHECKSUM = 'initrd_checksum'
PARAM_CHECKSUM_ALGO = 'checksum_algo'
PARAM_MAX_SIZE = 'max_size'              # bytes, per downloaded file
DEFAULT_MAX_SIZE = 1024 ** 3             # max_size when not given
# load only: hardware deny rules, a list of DENY_RULE_FIELDS mappings.
PARAM_DENY = 'deny'
# load only: the conductor's protocol version, an integer.
PARAM_PROTOCOL_VERSION = 'protocol_version'
# execute only.
PARAM_DELAY = 'delay'                    # seconds between reply and kexec

# How ``kexec`` loads the kernel: 'auto' uses kexec_file_load(2) when the
# running kernel demands signed kernels (lockdown, Secure Boot) and
# kexec_load(2) otherwise.
FILE_SYSCALL_AUTO = 'auto'
FILE_SYSCALL_ALWAYS = 'always'
FILE_SYSCALL_NEVER = 'never'
FILE_SYSCALL_MODES = (FILE_SYSCALL_AUTO, FILE_SYSCALL_ALWAYS,
                      FILE_SYSCALL_NEVER)

# Where a boot entry came from (result field 'source').
SOURCE_EXPLICIT = 'explicit'
SOURCE_BLS = 'bls'
SOURCE_SYSTEMD_BOOT = 'systemd-boot'
SOURCE_UKI = 'uki'
SOURCE_GRUB = 'grub'
SOURCE_EXTLINUX = 'extlinux'
SOURCE_SYMLINK = 'symlink'
SOURCE_NEWEST = 'newest'
SOURCE_URL = 'url'
SOURCES = (SOURCE_EXPLICIT, SOURCE_BLS, SOURCE_SYSTEMD_BOOT, SOURCE_UKI,
           SOURCE_GRUB, SOURCE_EXTLINUX, SOURCE_SYMLINK, SOURCE_NEWEST,
           SOURCE_URL)

# Result fields of get_boot_entry (and of load, which adds LOAD_FIELDS).
# 'kernel' and 'initrd' are paths as seen inside the image (or the URLs of
# a diskless deploy); 'initrd' may be None. 'initrds' lists every initrd
# in the order they are concatenated (early microcode first); 'initrd' is
# the last, the main one. 'uki' is the Unified Kernel Image the kernel
# and initrd were taken from, or None. 'root_device' is the block device
# the root filesystem was found on (None for root_path/URLs). 'skipped'
# lists the sources that refused the image before one gave the entry,
# each {'source', 'reason', 'message'}.
FIELD_KERNEL = 'kernel'
FIELD_INITRD = 'initrd'
FIELD_INITRDS = 'initrds'
FIELD_UKI = 'uki'
FIELD_CMDLINE = 'cmdline'
FIELD_SOURCE = 'source'
FIELD_ROOT_DEVICE = 'root_device'
FIELD_SKIPPED = 'skipped'
BOOT_ENTRY_FIELDS = (FIELD_KERNEL, FIELD_INITRD, FIELD_INITRDS, FIELD_UKI,
                     FIELD_CMDLINE, FIELD_SOURCE, FIELD_ROOT_DEVICE,
                     FIELD_SKIPPED)

# Added by load: 'method' is one of LOAD_METHODS; 'timings' maps phase
# names ('discover', 'download', 'load', ...) to seconds;
# 'protocol_version' is the agent's (missing from version 1 agents).
FIELD_METHOD = 'method'
FIELD_TIMINGS = 'timings'
FIELD_PROTOCOL_VERSION = 'protocol_version'
LOAD_FIELDS = (FIELD_METHOD, FIELD_TIMINGS, FIELD_PROTOCOL_VERSION)
METHOD_KEXEC_LOAD = 'kexec_load'
METHOD_KEXEC_FILE_LOAD = 'kexec_file_load'
LOAD_METHODS = (METHOD_KEXEC_LOAD, METHOD_KEXEC_FILE_LOAD)

# Result fields of execute.
FIELD_DELAY = 'delay'

# Result fields of get_version: the agent's version, and the oldest
# conductor version it serves.
FIELD_MIN_PROTOCOL_VERSION = 'min_protocol_version'
VERSION_FIELDS = (FIELD_PROTOCOL_VERSION, FIELD_MIN_PROTOCOL_VERSION)

# The version that added each load parameter of a version after 1.
# protocol_version itself is left out: it is how versions are told, an
# agent that does not know it refuses it, never ignores it.
_LOAD_PARAMS_SINCE = {PARAM_DENY: 2}


def is_version(value):
    """Whether ``value`` is a protocol version (a positive integer)."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and value >= 1)


def agent_serves(conductor_version):
    """Whether an agent of this release serves a conductor's version.

    :param conductor_version: the ``protocol_version`` parameter of a
        ``kexec.load``; None (not sent) is a conductor of version 1.
    """
    if conductor_version is None:
        conductor_version = 1
    return (is_version(conductor_version)
            and MIN_PROTOCOL_VERSION <= conductor_version
            <= PROTOCOL_VERSION)


def version_needed(params):
    """The lowest agent version that understands every load parameter.

    :param params: the parameters of a ``kexec.load``.
    """
    return max([1] + [_LOAD_PARAMS_SINCE.get(name, 1) for name in params])


# Reason codes. The agent puts one in a failed command's error details;
# the conductor records one whenever it does not kexec. Each maps to a
# one-line explanation; the troubleshooting guide says what to do.
REASON_DISABLED = 'disabled'
REASON_NETWORK_ISOLATION = 'network_isolation'
REASON_AGENT_UNSUPPORTED = 'agent_unsupported'
REASON_AGENT_ERROR = 'agent_error'
REASON_AGENT_UNREACHABLE = 'agent_unreachable'
REASON_TIMEOUT = 'timeout'
REASON_NO_ROOT = 'no_root'
REASON_NO_KERNEL = 'no_kernel'
REASON_UNSAFE_PATH = 'unsafe_path'
REASON_KEXEC_UNSUPPORTED = 'kexec_unsupported'
REASON_KEXEC_DISABLED = 'kexec_disabled'
REASON_LOCKDOWN = 'lockdown'
REASON_LOAD_FAILED = 'load_failed'
REASON_DOWNLOAD_FAILED = 'download_failed'
REASON_CHECKSUM_MISMATCH = 'checksum_mismatch'
REASON_TOO_LARGE = 'too_large'
REASON_TOO_COMPLEX = 'too_complex'
REASON_NO_AGENT = 'no_agent'
REASON_EXECUTE_FAILED = 'execute_failed'
REASON_NOT_LOADED = 'not_loaded'
REASON_NOT_APPLICABLE = 'not_applicable'
REASON_DENIED = 'denied'
REASON_CIRCUIT_OPEN = 'circuit_open'
REASON_NOT_VERIFIED = 'not_verified'
REASON_PROTOCOL_MISMATCH = 'protocol_mismatch'

REASONS = {
    REASON_DISABLED:
        'kexec is disabled for this node or deployment',
    REASON_NETWORK_ISOLATION:
        'the node changes networks between the agent and the instance',
    REASON_AGENT_UNSUPPORTED:
        'the agent ramdisk has no kexec extension',
    REASON_AGENT_ERROR:
        'the agent reported an unexpected error',
    REASON_AGENT_UNREACHABLE:
        'the agent stopped answering the conductor',
    REASON_TIMEOUT:
        'the agent did not finish the command in time',
    REASON_NO_ROOT:
        'no root filesystem was found on the install device',
    REASON_NO_KERNEL:
        'no kernel was found in the deployed image',
    REASON_UNSAFE_PATH:
        'a path in the deployed image points outside the image',
    REASON_KEXEC_UNSUPPORTED:
        'the agent kernel or ramdisk cannot kexec',
    REASON_KEXEC_DISABLED:
        'kexec is disabled by kernel.kexec_load_disabled',
    REASON_LOCKDOWN:
        'kernel lockdown refused to load the instance kernel',
    REASON_LOAD_FAILED:
        'kexec refused to load the instance kernel',
    REASON_DOWNLOAD_FAILED:
        'the instance kernel or ramdisk could not be downloaded',
    REASON_CHECKSUM_MISMATCH:
        'a downloaded file does not match its checksum',
    REASON_TOO_LARGE:
        'a file, directory or the whole boot configuration of the image '
        'is larger than its bound',
    REASON_TOO_COMPLEX:
        'the image\'s boot configuration nests, expands or takes longer '
        'than its bound',
    REASON_NO_AGENT:
        'no running agent was found on the node',
    REASON_EXECUTE_FAILED:
        'the agent was still answering after it was told to kexec',
    REASON_NOT_APPLICABLE:
        'the node needs Ironic\'s own reboot (e.g. disable_power_off)',
    REASON_NOT_LOADED:
        'execute was called with no instance kernel loaded',
    REASON_DENIED:
        'a hardware deny rule matches the node',
    REASON_CIRCUIT_OPEN:
        'kexec failed verification on this node too often in a row',
    REASON_NOT_VERIFIED:
        'the kexec\'d instance did not answer within [kexec]verify_timeout',
    REASON_PROTOCOL_MISMATCH:
        'the agent and the conductor speak different protocol versions',
}

# Key of the reason code in a failed command's error details.
DETAIL_REASON = 'reason'


DETAIL_MESSAGE = 'message'
# Of a protocol_mismatch only: the agent's protocol version.
DETAIL_PROTOCOL_VERSION = 'protocol_version'


def error_details(reason, message, protocol_version=None):
    """The ``details`` of an agent error that carries a reason code.

    :param reason: one of :data:`REASONS`.
    :param message: what went wrong, for the operator.
    :param protocol_version: the agent's protocol version, given with
        ``protocol_mismatch``.
    """
    if reason not in REASONS:
        raise ValueError('unknown kexec reason code %r' % reason)
    details = {DETAIL_REASON: reason, DETAIL_MESSAGE: message}
    if protocol_version is not None:
        details[DETAIL_PROTOCOL_VERSION] = protocol_version
    return details


def reason_from_error(command_error):
    """The reason code in an agent command error, or None.

    :param command_error: the ``command_error`` of an agent command result,
        a mapping as the agent serializes its errors.
    """
    if not isinstance(command_error, dict):
        return None
    details = command_error.get('details')
    if isinstance(details, dict):
        reason = details.get(DETAIL_REASON)
        if reason in REASONS:
            return reason
    return None


# Hardware deny rules: hardware known not to survive a kexec. A rule is a
# mapping with an 'id' (named in the reason's message), an optional
# 'comment', and one or more conditions; it matches when every condition
# it has matches. String conditions are shell-style patterns
# (fnmatch, case-insensitive); list conditions match when any of their
# patterns matches any of the node's values.
DENY_ID = 'id'
DENY_COMMENT = 'comment'
DENY_SYSTEM_VENDOR = 'system_vendor'      # DMI system manufacturer
DENY_SYSTEM_PRODUCT = 'system_product'    # DMI product name
DENY_PCI_IDS = 'pci_ids'                  # ['10de:*'], vendor:device, hex
DENY_DRIVERS = 'drivers'                  # kernel drivers bound to devices
DENY_CONDITIONS = (DENY_SYSTEM_VENDOR, DENY_SYSTEM_PRODUCT, DENY_PCI_IDS,
                   DENY_DRIVERS)
DENY_RULE_FIELDS = (DENY_ID, DENY_COMMENT) + DENY_CONDITIONS
_DENY_LIST_CONDITIONS = (DENY_PCI_IDS, DENY_DRIVERS)


def check_deny_rule(rule):
    """Raise ValueError unless ``rule`` is a well-formed deny rule."""
    if not isinstance(rule, dict):
        raise ValueError('a deny rule must be a mapping, not %r' % (rule,))
    unknown = sorted(set(rule) - set(DENY_RULE_FIELDS))
    if unknown:
        raise ValueError('deny rule %r has unknown fields %s'
                         % (rule.get(DENY_ID), ', '.join(unknown)))
    if not isinstance(rule.get(DENY_ID), str) or not rule[DENY_ID]:
        raise ValueError('a deny rule needs a non-empty string "id"')
    if not any(name in rule for name in DENY_CONDITIONS):
        raise ValueError('deny rule %r has no condition' % rule[DENY_ID])
    for name in DENY_CONDITIONS:
        if name not in rule:
            continue
        value = rule[name]
        if name in _DENY_LIST_CONDITIONS:
            ok = (isinstance(value, list) and value
                  and all(isinstance(v, str) and v for v in value))
        else:
            ok = isinstance(value, str) and bool(value)
        if not ok:
            raise ValueError('condition %s of deny rule %r must be a %s'
                             % (name, rule[DENY_ID],
                                'non-empty list of strings'
                                if name in _DENY_LIST_CONDITIONS
                                else 'non-empty string'))


def _pattern_matches(pattern, value):
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def deny_rule_matches(rule, facts):
    """Whether a (well-formed) deny rule matches a node's hardware.

    :param rule: a deny rule, see :func:`check_deny_rule`.
    :param facts: a mapping of DENY_CONDITIONS names to what is known of
        the node: a string for the system fields, an iterable of strings
        for the list fields; a missing or None value is unknown.
    :returns: True if every condition matches, False if one does not,
        None if no condition failed but one could not be decided.
    """
    unknown = False
    for name in DENY_CONDITIONS:
        if name not in rule:
            continue
        known = facts.get(name)
        if known is None:
            unknown = True
            continue
        patterns = rule[name]
        if name in _DENY_LIST_CONDITIONS:
            values = [v for v in known if isinstance(v, str)]
            hit = any(_pattern_matches(p, v)
                      for p in patterns for v in values)
        else:
            hit = isinstance(known, str) and _pattern_matches(patterns,
                                                              known)
        if not hit:
            return False
    return None if unknown else True
