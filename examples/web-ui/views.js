// The pages. Each view takes the route's parameters and returns the
// page's content (a node); API errors propagate to the shell, which shows
// the login form on a 401 and an error card otherwise.

import * as api from './api.js';
import { copyable, copyDigest } from './copy.js';
import {
  h, link, uiPath, streamPath, tagPath, imagePath, humanSize, time, shortDigest,
  digestLink, table, empty,
} from './dom.js';

const MEDIA_TYPES = {
  'application/vnd.oci.image.manifest.v1+json': 'OCI image manifest',
  'application/vnd.oci.image.index.v1+json': 'OCI image index',
  'application/vnd.docker.distribution.manifest.v2+json': 'Docker image manifest',
  'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
  'application/vnd.oci.image.config.v1+json': 'OCI image config',
  'application/vnd.docker.container.image.v1+json': 'Docker image config',
  'application/vnd.oci.empty.v1+json': 'empty',
};

function mediaTypeName(type) {
  if (!type) return '—';
  if (MEDIA_TYPES[type]) return MEDIA_TYPES[type];
  const layer = /(?:layer\.v1\.|rootfs\.)(.+)$/.exec(type);
  return layer ? layer[1].replace('diff.', '') : type;
}

function mediaType(type) {
  return h('span', { class: 'media-type', title: type || '' }, mediaTypeName(type));
}

/** Signature, SBOM, attestation or the artifact type itself. */
function referrerKind(artifactType) {
  const t = String(artifactType || '').toLowerCase();
  if (/sig|signature|notary|cosign/.test(t)) return 'Signature';
  if (/spdx|cyclonedx|sbom|syft/.test(t)) return 'SBOM';
  if (/in-toto|intoto|attestation|provenance|slsa|vex/.test(t)) return 'Attestation';
  return 'Artifact';
}

function badge(text, kind) {
  return h('span', { class: kind ? `badge badge--${kind}` : 'badge' }, text);
}

function platformText(p) {
  if (!p) return 'unknown platform';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function pullHost() {
  return location.host;
}

function pageHeader(title, ...rest) {
  return h('div', { class: 'page-header' }, h('h1', {}, title), ...rest);
}

function section(title, ...content) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'card', 'aria-labelledby': id },
    h('h2', { id }, title), ...content);
}

function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== false)
      .map(([term, value, wide]) => h('div', { class: wide ? 'facts__item facts__item--wide' : 'facts__item' },
        h('dt', {}, term), h('dd', {}, value))));
}

/** A "Show more" button that runs `load` and removes itself when done. */
function moreButton(label, load) {
  const button = h('button', {
    type: 'button',
    class: 'button more',
    onclick: async () => {
      button.disabled = true;
      button.textContent = 'Loading…';
      try {
        const again = await load();
        if (again) {
          button.disabled = false;
          button.textContent = label;
        } else {
          button.remove();
        }
      } catch (error) {
        button.disabled = false;
        button.textContent = `${label} (failed: ${error.message})`;
      }
    },
  }, label);
  return button;
}

export function breadcrumbs(items) {
  if (items.length === 0) return [];
  const all = [{ label: 'Repositories', href: '/ui/' }, ...items];
  return h('ol', {}, all.map((item, i) => h('li', {},
    i === all.length - 1
      ? h('span', { 'aria-current': 'page' }, item.label)
      : link(item.href, item.label))));
}

export function notFound(path) {
  return h('section', { class: 'card' },
    h('h1', {}, 'Page not found'),
    h('p', {}, 'Nothing here answers ', h('code', {}, path), '.'),
    h('p', {}, link('/ui/', 'Back to the repositories')));
}

export function failure(error) {
  const status = error && error.status;
  const title = status === 403 ? 'Access denied'
    : status === 404 ? 'Not found'
      : status === 429 ? 'Too many requests'
        : 'Something went wrong';
  return h('section', { class: 'card card--error' },
    h('h1', {}, title),
    h('p', {}, error && error.message ? error.message : String(error)),
    error && error.code ? h('p', { class: 'muted' }, 'Error code ', h('code', {}, error.code)) : null,
    h('p', {}, link('/ui/', 'Back to the repositories')));
}

/** A search field hiding the repositories (and namespaces) that do not match. */
function filterBox(list) {
  const none = h('p', { class: 'empty', hidden: true }, 'No repository matches.');
  const input = h('input', {
    id: 'repo-filter',
    type: 'search',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'team/app',
    oninput: () => {
      const needle = input.value.trim().toLowerCase();
      let shown = 0;
      for (const group of list.querySelectorAll('.namespace')) {
        let inGroup = 0;
        for (const item of group.querySelectorAll('.repo')) {
          const match = item.querySelector('a').textContent.toLowerCase().includes(needle);
          item.hidden = !match;
          if (match) inGroup += 1;
        }
        group.hidden = inGroup === 0;
        shown += inGroup;
      }
      none.hidden = shown > 0;
    },
  });
  return h('div', { class: 'filter' },
    h('label', { for: 'repo-filter' }, 'Filter repositories'), input, none);
}

// ---------------------------------------------------------------------
// /ui/  — the repositories the caller may pull, by namespace
// ---------------------------------------------------------------------

export async function repositories(_params, ctx) {
  ctx.crumbs([]);
  const first = await api.repositories(null);
  const groups = new Map();
  const list = h('div', { class: 'namespaces' });
  let count = 0;
  const summary = h('p', { class: 'lead' });
  const signedIn = api.session() !== null;

  const add = (body) => {
    for (const repo of body.items || []) {
      count += 1;
      let group = groups.get(repo.namespace);
      if (!group) {
        const items = h('ul', { class: 'repo-list' });
        const counter = h('span', { class: 'count' });
        group = { items, counter, n: 0 };
        groups.set(repo.namespace, group);
        list.appendChild(h('section', { class: 'card namespace', 'aria-label': `Namespace ${repo.namespace}` },
          h('div', { class: 'namespace__head' },
            h('h2', {}, link(uiPath('namespaces', repo.namespace), repo.namespace)),
            counter),
          items));
      }
      group.n += 1;
      group.counter.textContent = group.n === 1 ? '1 repository' : `${group.n} repositories`;
      group.items.appendChild(h('li', { class: 'repo' },
        link(streamPath(repo.namespace, repo.imageStream),
          h('span', { class: 'repo__ns' }, `${repo.namespace}/`),
          h('span', { class: 'repo__name' }, repo.imageStream)),
        h('span', { class: 'repo__meta' }, repo.created ? ['created ', time(repo.created)] : null)));
    }
    summary.textContent = `${count}${body.metadata && body.metadata.continue ? '+' : ''} ` +
      `${count === 1 ? 'repository' : 'repositories'} you may pull` +
      (signedIn ? '.' : ': public namespaces. Sign in to see the ones shared with you.');
  };
  add(first.body);
  let cursor = first.body.metadata && first.body.metadata.continue;
  const page = [pageHeader('Repositories', summary)];
  if (count === 0) page.push(empty('No repositories yet.'));
  else page.push(filterBox(list));
  page.push(list);
  if (cursor) {
    page.push(moreButton('Show more repositories', async () => {
      const next = await api.repositories(cursor);
      add(next.body);
      cursor = next.body.metadata && next.body.metadata.continue;
      return Boolean(cursor);
    }));
  }
  return h('div', {}, page);
}

// ---------------------------------------------------------------------
// /ui/namespaces/<ns>  — its ImageStreams
// ---------------------------------------------------------------------

function latestTag(stream) {
  let best = null;
  for (const t of stream.status.tags || []) {
    const item = (t.items || [])[0];
    if (item && (!best || item.created > best.created)) best = { tag: t.tag, ...item };
  }
  return best;
}

/** What a namespace stores against its quota (blobs counted once). */
function usageSection(status) {
  const u = status.usage || {};
  const quota = status.quotaBytes;
  const used = typeof quota === 'number' && quota > 0
    ? Math.min(100, Math.round((u.bytes / quota) * 100)) : null;
  return section('Usage',
    facts([
      ['Stored', `${humanSize(u.bytes)} in ${u.blobs} ${u.blobs === 1 ? 'blob' : 'blobs'}`],
      ['Quota', quota === null || quota === undefined ? 'none'
        : `${humanSize(quota)} · ${used}% used`],
      ['ImageStreams', String(u.imagestreams)],
      ['Images', String(u.images)],
    ]),
    used === null ? null : h('meter', {
      class: 'quota', min: '0', max: String(quota), value: String(Math.min(u.bytes, quota)),
      high: String(Math.floor(quota * 0.9)), 'aria-label': `Quota used: ${used}%`,
    }));
}

export async function namespace({ ns }, ctx) {
  ctx.crumbs([{ label: ns, href: uiPath('namespaces', ns) }]);
  const [first, info] = await Promise.all([api.imageStreams(ns, null), api.namespace(ns)]);
  const rows = [];
  const body = h('tbody');
  const addRows = (page) => {
    for (const stream of page.items || []) {
      const tags = stream.status.tags || [];
      const latest = latestTag(stream);
      const more = stream.status.tagsContinue ? '+' : '';
      rows.push(stream);
      body.appendChild(h('tr', {},
        h('td', { 'data-label': 'ImageStream' },
          h('strong', {}, link(streamPath(ns, stream.metadata.name), stream.metadata.name))),
        h('td', { 'data-label': 'Tags' },
          tags.length === 0 ? h('span', { class: 'muted' }, 'none')
            : h('span', { class: 'chips' },
              tags.slice(0, 4).map((t) => link(tagPath(ns, stream.metadata.name, t.tag), badge(t.tag, 'tag'))),
              tags.length > 4 ? h('span', { class: 'muted' }, ` +${tags.length - 4}${more}`) : null)),
        h('td', { 'data-label': 'Updated' }, latest ? time(latest.created) : time(stream.metadata.creationTimestamp)),
        h('td', { 'data-label': 'Size' }, humanSize((stream.status.usage || {}).bytes)),
        h('td', { 'data-label': 'Pull from' }, h('code', { class: 'wrap' }, stream.status.dockerImageRepository))));
    }
  };
  addRows(first.body);
  let cursor = first.body.metadata && first.body.metadata.continue;
  const tableEl = h('div', { class: 'table-wrap' },
    h('table', { class: 'data' },
      h('caption', { class: 'visually-hidden' }, `ImageStreams of ${ns}`),
      h('thead', {}, h('tr', {}, ['ImageStream', 'Tags', 'Updated', 'Size', 'Pull from'].map((l) => h('th', { scope: 'col' }, l)))),
      body));
  return h('div', {},
    pageHeader(ns, h('p', { class: 'lead' },
      `Namespace · ${rows.length}${cursor ? '+' : ''} ${rows.length === 1 ? 'ImageStream' : 'ImageStreams'}`)),
    usageSection(info.body.status || {}),
    rows.length === 0 ? empty('This namespace has no ImageStreams yet.') : section('ImageStreams', tableEl),
    cursor ? moreButton('Show more ImageStreams', async () => {
      const next = await api.imageStreams(ns, cursor);
      addRows(next.body);
      cursor = next.body.metadata && next.body.metadata.continue;
      return Boolean(cursor);
    }) : null);
}

// ---------------------------------------------------------------------
// /ui/namespaces/<ns>/imagestreams/<name>  — tags
// ---------------------------------------------------------------------

export async function imageStream({ ns, name }, ctx) {
  ctx.crumbs([
    { label: ns, href: uiPath('namespaces', ns) },
    { label: name, href: streamPath(ns, name) },
  ]);
  const first = await api.imageStream(ns, name, null);
  const stream = first.body;
  const repository = stream.status.dockerImageRepository;
  const body = h('tbody');
  let count = 0;
  const addTags = (page) => {
    for (const t of page.status.tags || []) {
      count += 1;
      const item = (t.items || [])[0];
      body.appendChild(h('tr', {},
        h('td', { 'data-label': 'Tag' }, h('strong', {}, link(tagPath(ns, name, t.tag), t.tag))),
        h('td', { 'data-label': 'Image' }, item ? digestLink(item.image) : '—'),
        h('td', { 'data-label': 'Updated' }, item ? time(item.created) : '—'),
        h('td', { 'data-label': 'History' }, link(tagPath(ns, name, t.tag), 'History',
          h('span', { class: 'visually-hidden' }, ` of ${t.tag}`)))));
    }
  };
  addTags(stream);
  let cursor = stream.status.tagsContinue;
  const latest = latestTag(stream);
  return h('div', {},
    pageHeader(name, h('p', { class: 'lead' }, 'ImageStream in ', link(uiPath('namespaces', ns), ns),
      stream.metadata.creationTimestamp ? [' · created ', time(stream.metadata.creationTimestamp)] : null,
      stream.status.upstream ? [' · cached from ', h('code', { class: 'wrap' }, stream.status.upstream)] : null)),
    section('Pull',
      latest ? copyable(`podman pull ${repository}:${latest.tag}`, `pull command for ${latest.tag}`, { command: true })
        : copyable(repository, 'image repository')),
    section('Tags',
      count === 0 ? empty('No tags: images here are pulled by digest.')
        : h('div', { class: 'table-wrap' },
          h('table', { class: 'data' },
            h('caption', { class: 'visually-hidden' }, `Tags of ${name}`),
            h('thead', {}, h('tr', {}, ['Tag', 'Image', 'Updated', 'History'].map((l) => h('th', { scope: 'col' }, l)))),
            body)),
      cursor ? moreButton('Show more tags', async () => {
        const next = await api.imageStream(ns, name, cursor);
        addTags(next.body);
        cursor = next.body.status.tagsContinue;
        return Boolean(cursor);
      }) : null));
}

// ---------------------------------------------------------------------
// /ui/namespaces/<ns>/imagestreamtags/<name>:<tag>  — a tag's history
// ---------------------------------------------------------------------

export async function tag({ ns, name, tag: tagName }, ctx) {
  ctx.crumbs([
    { label: ns, href: uiPath('namespaces', ns) },
    { label: name, href: streamPath(ns, name) },
    { label: tagName, href: tagPath(ns, name, tagName) },
  ]);
  const first = await api.imageStreamTag(ns, name, tagName, null);
  const ist = first.body;
  const body = h('tbody');
  let events = [];
  const renderRows = (complete) => {
    body.replaceChildren();
    events.forEach((event, i) => {
      const kind = event.image === null ? 'Deleted'
        : complete && i === events.length - 1 ? 'Created'
          : 'Moved';
      body.appendChild(h('tr', {},
        h('td', { 'data-label': 'When' }, time(event.created)),
        h('td', { 'data-label': 'Event' }, badge(kind, kind.toLowerCase())),
        h('td', { 'data-label': 'Image' }, !event.image ? h('span', { class: 'muted' }, '—')
          // A pruned image is gone: its digest stays, not a link to nowhere.
          : event.pruned ? h('span', {}, h('code', { class: 'muted' }, event.image.slice(0, 19)), ' ', badge('Pruned', 'deleted'))
            : digestLink(event.image)),
        h('td', { 'data-label': 'By' }, h('span', { class: 'actor' }, event.actor))));
    });
  };
  events = ist.history || [];
  let cursor = ist.historyContinue;
  renderRows(!cursor);
  const pull = `podman pull ${ist.dockerImageReference ? ist.dockerImageReference.replace(/@.*$/, '') : `${pullHost()}/${ist.repository}`}:${tagName}`;
  return h('div', {},
    pageHeader(`${name}:${tagName}`, h('p', { class: 'lead' }, 'Tag of ',
      link(streamPath(ns, name), `${ns}/${name}`))),
    section('Current target',
      facts([
        ['Image', ist.image ? digestLink(ist.image) : h('span', {}, 'deleted (the history is kept)')],
        ['Updated', time(ist.updated)],
        ['First set', ist.metadata.creationTimestamp ? time(ist.metadata.creationTimestamp) : null],
      ]),
      ist.image ? copyable(pull, `pull command for ${tagName}`, { command: true }) : null),
    section('History',
      h('p', { class: 'muted' }, 'Every move of the tag, newest first.'),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'data history' },
          h('caption', { class: 'visually-hidden' }, `History of ${name}:${tagName}`),
          h('thead', {}, h('tr', {}, ['When', 'Event', 'Image', 'By'].map((l) => h('th', { scope: 'col' }, l)))),
          body)),
      cursor ? moreButton('Show older moves', async () => {
        const next = await api.imageStreamTag(ns, name, tagName, cursor);
        events = events.concat(next.body.history || []);
        cursor = next.body.historyContinue;
        renderRows(!cursor);
        return Boolean(cursor);
      }) : null));
}

// ---------------------------------------------------------------------
// /ui/images/<digest>
// ---------------------------------------------------------------------

function layersSection(layers) {
  const total = layers.reduce((sum, l) => sum + (l.size || 0), 0);
  return section('Layers',
    h('p', { class: 'muted' }, `${layers.length} ${layers.length === 1 ? 'layer' : 'layers'}, ${humanSize(total)} compressed.`),
    table('Layers', ['#', 'Digest', 'Type', 'Size'],
      layers.map((l, i) => [
        String(i + 1),
        copyDigest(l.digest, `digest of layer ${i + 1}`),
        mediaType(l.mediaType),
        h('span', { class: 'size', title: `${l.size} bytes` }, humanSize(l.size)),
      ]), { className: 'layers' }));
}

/** Total compressed layer size of each child, from its Image document. */
async function childSizes(manifests) {
  return Promise.all(manifests.slice(0, 32).map(async (m) => {
    try {
      const { body } = await api.image(m.digest);
      return (body.layers || []).reduce((sum, l) => sum + (l.size || 0), 0);
    } catch {
      return null;
    }
  }));
}

async function platformsSection(manifests) {
  const sizes = await childSizes(manifests);
  return section('Platforms',
    table('Platforms of this index', ['Platform', 'Image', 'Type', 'Layers'],
      manifests.map((m, i) => [
        h('strong', {}, link(imagePath(m.digest), platformText(m.platform))),
        digestLink(m.digest),
        mediaType(m.mediaType),
        typeof sizes[i] === 'number' ? h('span', { class: 'size' }, humanSize(sizes[i])) : h('span', { class: 'muted' }, '—'),
      ]), { className: 'platforms' }));
}

function configSection(config, descriptor) {
  const labels = Object.entries(config.labels || {});
  const history = config.history || [];
  return [
    section('Configuration',
      facts([
        ['Platform', platformText(config)],
        ['Built', config.created ? time(config.created) : null],
        ['Author', config.author || null, 'wide'],
        ['Config', descriptor ? h('span', {}, copyDigest(descriptor.digest, 'config digest'),
          ` ${humanSize(descriptor.size)}`) : null, 'wide'],
      ]),
      h('h3', {}, 'Labels'),
      labels.length === 0 ? empty('No labels.')
        : h('dl', { class: 'labels' }, labels.map(([k, v]) => h('div', { class: 'labels__item' },
          h('dt', {}, k), h('dd', {}, v))))),
    section('Build history',
      history.length === 0 ? empty('The config records no build steps.')
        : h('ol', { class: 'build-history' }, history.map((step) => h('li', {},
          h('code', { class: 'wrap' }, step.created_by || step.comment || '(no command recorded)'),
          h('span', { class: 'build-history__meta' },
            step.empty_layer ? badge('no layer', 'muted') : badge('layer', 'tag'),
            step.created ? time(step.created) : null))))),
  ];
}

function repositoriesSection(image) {
  const host = pullHost();
  const rows = image.repositories.map((r) => {
    const [ns, ...rest] = r.name.split('/');
    const stream = rest.join('/');
    return [
      link(streamPath(ns, stream), r.name),
      r.tags.length === 0 ? h('span', { class: 'muted' }, 'untagged')
        : h('span', { class: 'chips' }, r.tags.map((t) => link(tagPath(ns, stream, t), badge(t, 'tag')))),
      time(r.created),
    ];
  });
  const commands = image.repositories.map((r) =>
    copyable(`podman pull ${host}/${r.name}@${image.digest}`, `pull command for ${r.name}`, { command: true }));
  return [
    section('Pull', h('div', { class: 'stack' }, commands)),
    section('Repositories and tags',
      table('Repositories holding this image', ['Repository', 'Tags', 'Pushed'], rows)),
  ];
}

async function referrersSection(image) {
  const holder = image.repositories[0];
  if (!holder) return null;
  let index;
  try {
    index = (await api.referrers(holder.name, image.digest)).body;
  } catch (error) {
    return section('Referrers', h('p', { class: 'muted' }, `Could not list referrers: ${error.message}`));
  }
  const found = index.manifests || [];
  return section('Referrers',
    h('p', { class: 'muted' }, 'Signatures, SBOMs and other artifacts that refer to this image (in ',
      h('code', {}, holder.name), ').'),
    found.length === 0 ? empty('Nothing refers to this image.')
      : table('Referrers', ['Kind', 'Artifact type', 'Artifact', 'Size'],
        found.map((m) => {
          const kind = referrerKind(m.artifactType);
          return [
            badge(kind, kind.toLowerCase()),
            h('code', { class: 'wrap' }, m.artifactType || mediaTypeName(m.mediaType)),
            digestLink(m.digest),
            humanSize(m.size),
          ];
        }), { className: 'referrers' }));
}

export async function image({ digest }, ctx) {
  const { body: image } = await api.image(digest);
  const first = image.repositories[0];
  if (first) {
    const [ns, ...rest] = first.name.split('/');
    ctx.crumbs([
      { label: ns, href: uiPath('namespaces', ns) },
      { label: rest.join('/'), href: streamPath(ns, rest.join('/')) },
      { label: shortDigest(image.digest), href: imagePath(image.digest) },
    ]);
  } else {
    ctx.crumbs([{ label: shortDigest(image.digest), href: imagePath(image.digest) }]);
  }
  const isIndex = (image.manifests || []).length > 0 ||
    /index|manifest\.list/.test(image.mediaType);
  const config = image.imageConfig;
  const kind = image.artifactType ? referrerKind(image.artifactType)
    : isIndex ? 'Multi-platform index' : 'Image';
  const layersTotal = (image.layers || []).reduce((sum, l) => sum + (l.size || 0), 0);
  const summary = section('Summary',
    facts([
      ['Digest', copyable(image.digest, 'digest')],
      ['Media type', h('span', {}, mediaTypeName(image.mediaType), h('br'), h('code', { class: 'wrap muted' }, image.mediaType)), 'wide'],
      ['Artifact type', image.artifactType ? h('code', { class: 'wrap' }, image.artifactType) : null, 'wide'],
      ['Manifest size', h('span', { title: `${image.size} bytes` }, humanSize(image.size))],
      ['Layers', isIndex || !(image.layers || []).length ? null : `${image.layers.length} · ${humanSize(layersTotal)}`],
      ['Platform', config ? platformText(config) : null],
      ['Pushed', time(image.metadata.creationTimestamp)],
      ['Refers to', image.subject ? digestLink(image.subject.digest) : null],
    ]));
  const annotations = Object.entries(image.annotations || {});
  const tagged = image.repositories.find((r) => r.tags.length > 0);
  const parts = [
    pageHeader(shortDigest(image.digest), h('p', { class: 'lead' }, badge(kind, 'kind'),
      config ? ` ${platformText(config)}` : '',
      isIndex ? ` · ${image.manifests.length} platforms` : '',
      tagged ? [' · ', h('code', {}, `${tagged.name}:${tagged.tags[0]}`)] : '')),
    summary,
    ...repositoriesSection(image),
  ];
  if (isIndex) parts.push(await platformsSection(image.manifests));
  if (!isIndex && (image.layers || []).length) parts.push(layersSection(image.layers));
  if (config) parts.push(...configSection(config, image.config));
  if (annotations.length) {
    parts.push(section('Annotations', h('dl', { class: 'labels' }, annotations.map(([k, v]) =>
      h('div', { class: 'labels__item' }, h('dt', {}, k), h('dd', {}, v))))));
  }
  if (ctx.stale()) return h('div');
  parts.push(await referrersSection(image));
  return h('div', { class: 'image' }, parts);
}
