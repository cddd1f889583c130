import { expect } from 'chai';
import { pod as podSchema } from '../../api/schemas.js';
import { fits, formatCpu, hostCapacity, minus, parseLimit, podRequest } from '../../agent/capacity.js';

const spec = (containers: unknown[]) => podSchema.parse({ name: 'p', type: 'pod', state: 'created', spec: { containers } }).spec;

describe('worker accounting', () => {
  it('commits the summed request, else the largest limit, else the default', () => {
    expect(podRequest(spec([{ name: 'a', image: 'i' }]))).to.deep.equal({ cpu: 1, memory: 128 });
    expect(
      podRequest(spec([
        { name: 'a', image: 'i', resources: { requests: { cpu: '0.25', memory: 100 } } },
        { name: 'b', image: 'i', resources: { requests: { cpu: 0.5 } } },
      ])),
    ).to.deep.equal({ cpu: 750, memory: 100 });
    expect(podRequest(spec([{ name: 'a', image: 'i', resources: { limits: { cpu: '2', memory: 300 } } }, { name: 'b', image: 'i', resources: { limits: { memory: 500 } } }]))).to.deep.equal({
      cpu: 2000,
      memory: 500,
    });
    expect(podRequest(spec([]))).to.deep.equal({ cpu: 1, memory: 128 });
  });

  it('fits, subtracts and prints CPU without drift', () => {
    let free = { cpu: 1000, memory: 1024 };
    for (let i = 0; i < 10; i++) free = minus(free, { cpu: 100, memory: 1 });
    expect(free.cpu).to.equal(0);
    expect(formatCpu(1500)).to.equal('1.5');
    expect(fits({ cpu: 100, memory: 128 }, { cpu: 100, memory: 128 })).to.equal(true);
    expect(fits({ cpu: 100, memory: 127 }, { cpu: 100, memory: 128 })).to.equal(false);
    expect(parseLimit('cpu', '0.75')).to.equal(750);
    expect(parseLimit('memory', '512')).to.equal(512);
    expect(parseLimit('memory', 'lots')).to.equal(undefined);
  });
});

describe('host capacity', () => {
  const GiB = 1024 ** 3;
  it('offers every CPU and the memory less 10%, at least 512 MiB, of the host', () => {
    expect(hostCapacity({ cpus: 16, memoryBytes: 64 * GiB })).to.deep.equal({ cpus: 16, memory: 65536 - 6554 });
    expect(hostCapacity({ cpus: 2, memoryBytes: 2 * GiB })).to.deep.equal({ cpus: 2, memory: 2048 - 512 });
  });

  it('keeps room for one default pod on a tiny host, and stays within the CPU bound', () => {
    expect(hostCapacity({ cpus: 1, memoryBytes: 256 * 1024 ** 2 })).to.deep.equal({ cpus: 1, memory: 128 });
    expect(hostCapacity({ cpus: 4096, memoryBytes: 8 * GiB }).cpus).to.equal(1024);
  });
});
