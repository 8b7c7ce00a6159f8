# Sourced by diskimage-builder in every phase. In an image build, the
# install script installs the checkout that the source-repository file put
# in the image (DIB_REPOLOCATION_ironic_kexec / DIB_REPOREF_ironic_kexec
# choose which), unless IPA_KEXEC_SOURCE names something else.
#
# IPA_KEXEC_VERSION pins the build to the conductors' release: the source
# repository checks out its tag (the ref of source-repository-ironic-kexec;
# DIB_REPOREF_ironic_kexec, if set, still wins), and the install script
# fails unless that exact version got installed.
export IPA_KEXEC_SOURCE=${IPA_KEXEC_SOURCE:-/tmp/ironic-kexec}
export IPA_KEXEC_VERSION=${IPA_KEXEC_VERSION:-}
