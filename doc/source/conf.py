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

# Sphinx configuration of the ironic-kexec documentation.

extensions = [
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]
try:
    import openstackdocstheme  # noqa: F401
except ImportError:
    html_theme = 'alabaster'
else:
    extensions.append('openstackdocstheme')
    html_theme = 'openstackdocs'
    openstackdocs_repo_name = 'openstack/ironic-kexec'
    openstackdocs_use_storyboard = False
    openstackdocs_bug_project = 'ironic-kexec'
    openstackdocs_bug_tag = 'docs'
    openstackdocs_auto_name = False

# The sample written from the [kexec] options by oslo-config-generator.
config_generator_config_file = (
    '../../tools/config/ironic-kexec-config-generator.conf')
sample_config_basename = '_static/ironic-kexec'

project = 'ironic-kexec'
copyright = 'The ironic-kexec Authors'
master_doc = 'index'
source_suffix = '.rst'
exclude_patterns = ['_build']
pygments_style = 'native'
html_static_path = ['_static']
