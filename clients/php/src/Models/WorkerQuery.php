<?php

declare(strict_types=1);

namespace Stask\Models;

use Stask\Facades\sTask;
use Stask\Support\Collection;
use Stask\Worker;

/**
 * A worker query: scope and activity are filtered by the daemon, other fields here.
 */
final class WorkerQuery
{
    private ?string $scope = null;
    private ?bool $active = null;
    /** @var array<string, mixed> */
    private array $where = [];

    public function byScope(string $scope): self
    {
        $this->scope = $scope;
        return $this;
    }

    public function active(): self
    {
        $this->active = true;
        return $this;
    }

    public function ordered(): self
    {
        return $this;
    }

    public function where(string $field, mixed $value): self
    {
        $this->where[$field] = $value;
        return $this;
    }

    /** @return Collection<Worker> */
    public function get(): Collection
    {
        $workers = sTask::getClient()->workers($this->active, $this->scope);
        return $workers->filter(function (Worker $w) {
            foreach ($this->where as $field => $value) {
                if ($w->$field != $value) {
                    return false;
                }
            }
            return true;
        });
    }

    public function first(): ?Worker
    {
        return $this->get()->first();
    }
}
