#!/bin/bash
# plugin.sh - devstack plugin for ironic-kexec
#
# The plugin contract: https://docs.openstack.org/devstack/latest/plugins.html
# Ironic's own plugin does the heavy lifting; this one installs the
# conductor side, enables the kexec hardware types and deploy interface,
# puts the agent extension in the ramdisk ironic builds and moves the
# enrolled nodes onto kexec.

# shellcheck source=devstack/lib/ironic-kexec
source "$(dirname "${BASH_SOURCE[0]}")/lib/ironic-kexec"

if is_service_enabled ir-cond ir-api; then
    if [[ "$1" == "stack" ]]; then
        case "$2" in
            install)
                echo_summary "Installing ironic-kexec"
                install_ironic_kexec
                ;;
            post-config)
                echo_summary "Configuring ironic-kexec"
                configure_ironic_kexec
                configure_ironic_kexec_ramdisk
                ;;
            extra)
                if [[ "$IRONIC_KEXEC_CONFIGURE_NODES" == "True" ]]; then
                    echo_summary "Moving the enrolled nodes onto kexec"
                    configure_ironic_kexec_nodes
                fi
                ;;
            test-config)
                if is_service_enabled tempest; then
                    configure_ironic_kexec_tempest
                fi
                ;;
        esac
    fi

    if [[ "$1" == "unstack" ]]; then
        # Nothing runs on its own: the code lives in ironic's services,
        # which ironic's plugin stops.
        :
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_ironic_kexec
    fi
fi
