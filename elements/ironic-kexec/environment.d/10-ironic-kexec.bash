# Sourced by diskimage-builder in every phase. In an image build, the
# install script installs the checkout that the source-repository file put
# in the image (DIB_REPOLOCATION_ironic_kexec / DIB_REPOREF_ironic_kexec
# choose which), unless IPA_KEXEC_SOURCE names something else.
export IPA_KEXEC_SOURCE=${IPA_KEXEC_SOURCE:-/tmp/ironic-kexec}
