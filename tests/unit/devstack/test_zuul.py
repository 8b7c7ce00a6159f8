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

"""The Zuul jobs agree with the devstack plugin they run."""

import glob
import os
import re
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
# Jobs defined by other projects that ours may name.
EXTERNAL_JOBS = {'ironic-base', 'openstack-tox', 'openstack-tox-pep8'}


def load_zuul():
    jobs, projects = {}, []
    for path in sorted(glob.glob(os.path.join(REPO, 'zuul.d', '*.yaml'))):
        with open(path) as f:
            for item in yaml.safe_load(f) or []:
                if 'job' in item:
                    jobs[item['job']['name']] = item['job']
                elif 'project' in item:
                    projects.append(item['project'])
    return jobs, projects


def settings_variables():
    with open(os.path.join(REPO, 'devstack', 'settings')) as f:
        return set(re.findall(r'^(IRONIC_KEXEC_\w+)=', f.read(), re.M))


class ZuulTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.jobs, self.projects = load_zuul()

    def merged_vars(self, name):
        """A job's vars with its in-tree parents', as Zuul merges them."""
        job = self.jobs[name]
        parent = job.get('parent')
        merged = (self.merged_vars(parent) if parent in self.jobs
                  else {})
        for key, value in job.get('vars', {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = dict(merged[key], **value)
            else:
                merged[key] = value
        return merged

    def devstack_jobs(self):
        return [name for name, job in self.jobs.items()
                if not job.get('abstract')
                and 'devstack_plugins' in self.merged_vars(name)]

    def test_devstack_jobs_exist_and_inherit_ironic_base(self):
        names = self.devstack_jobs()
        self.assertTrue(names)
        for name in names:
            root = name
            while self.jobs[root].get('parent') in self.jobs:
                root = self.jobs[root]['parent']
            self.assertEqual('ironic-base', self.jobs[root]['parent'], name)

    def test_jobs_enable_this_plugin(self):
        base = self.jobs['ironic-kexec-tempest-base']
        self.assertIn('opendev.org/openstack/ironic-kexec',
                      base['required-projects'])
        for name in self.devstack_jobs():
            plugins = self.merged_vars(name)['devstack_plugins']
            # devstack clones it to $DEST/ironic-kexec, where
            # devstack/settings looks for it.
            self.assertIn('ironic-kexec', plugins, name)

    def test_jobs_deploy_with_kexec(self):
        for name in self.devstack_jobs():
            localrc = self.merged_vars(name)['devstack_localrc']
            self.assertIs(True, localrc['IRONIC_KEXEC_CONFIGURE_NODES'])
            self.assertEqual('kexec', localrc['IRONIC_KEXEC_DEPLOY_INTERFACE'])
            # The plugin knows the kexec twin of this driver.
            self.assertIn(localrc['IRONIC_DEPLOY_DRIVER'],
                          ('ipmi', 'redfish'))
            # The element only goes into a ramdisk that is built.
            self.assertIs(True, localrc['IRONIC_KEXEC_RAMDISK_ELEMENT'])
            self.assertIs(True, localrc['IRONIC_BUILD_DEPLOY_RAMDISK'])
            # A silent fallback would hide a broken kexec.
            self.assertEqual('required',
                             localrc['IRONIC_KEXEC_DEFAULT_MODE'])

    def test_jobs_set_only_variables_the_plugin_reads(self):
        known = settings_variables()
        self.assertIn('IRONIC_KEXEC_DEFAULT_MODE', known)
        for name in self.devstack_jobs():
            localrc = self.merged_vars(name)['devstack_localrc']
            for variable in localrc:
                if variable.startswith('IRONIC_KEXEC_'):
                    self.assertIn(variable, known,
                                  '%s sets %s' % (name, variable))

    def test_project_names_defined_jobs(self):
        self.assertEqual(1, len(self.projects))
        for pipeline in ('check', 'gate'):
            for entry in self.projects[0][pipeline]['jobs']:
                name = entry if isinstance(entry, str) else next(iter(entry))
                self.assertTrue(name in self.jobs or name in EXTERNAL_JOBS,
                                '%s runs unknown job %s' % (pipeline, name))
        # What gates is checked first.
        check = [e if isinstance(e, str) else next(iter(e))
                 for e in self.projects[0]['check']['jobs']]
        for entry in self.projects[0]['gate']['jobs']:
            self.assertIn(entry, check)

    def test_every_parent_exists(self):
        for name, job in self.jobs.items():
            parent = job.get('parent')
            self.assertTrue(parent in self.jobs or parent in EXTERNAL_JOBS,
                            '%s has unknown parent %s' % (name, parent))
