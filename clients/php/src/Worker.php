<?php

declare(strict_types=1);

namespace Stask;

/**
 * A worker as the seed's `sWorker` showed it (`identifier`, `scope`, `title`, `active`,
 * `class`, `position`, `settings`, `hidden`), plus what the daemon knows of its plugin
 * (`state` loaded/orphaned/error, `version`, `file`, `actions`, ...). Setting `active` or
 * `settings` and calling `save()` writes them, as the seed's model did.
 *
 * @property-read string|null $load_error
 * @property-read string|null $file
 * @property-read string|null $version
 * @property-read string|null $loaded_at
 */
class Worker implements \JsonSerializable
{
    public int $id;
    public string $uuid;
    public string $identifier;
    public string $scope;
    public string $title;
    public string $description;
    public bool $active;
    /** The library file and the type it declares. */
    public string $class;
    public int $position;
    public int $hidden;
    /** @var array<string, mixed> */
    public array $settings;
    /** @var array<string, mixed> */
    public array $default_settings;
    /** @var list<array<string, mixed>> `[{name, description, schema?}]` */
    public array $actions;
    /** `loaded`, `orphaned` or `error`. */
    public string $state;

    /** @var array<string, mixed> */
    private array $attributes = [];

    /** @param array<string, mixed> $attributes A worker object of the API. */
    public function __construct(array $attributes, private ?Client $client = null)
    {
        $this->fill($attributes);
    }

    /** Its plugin is loaded and its tasks can run (when active). */
    public function isLoaded(): bool
    {
        return $this->state === 'loaded';
    }

    /** The names of its actions. @return list<string> */
    public function actionNames(): array
    {
        return array_values(array_map(fn ($a) => (string) $a['name'], $this->actions));
    }

    /**
     * Writes a changed `active` (activate/deactivate) and changed `settings`, then reads the
     * worker back; returns whether anything was written.
     */
    public function save(): bool
    {
        $client = $this->client ?? Facades\sTask::getClient();
        $written = false;
        if ($this->active !== (bool) $this->attributes['active']) {
            $this->active ? $client->activateWorker($this->identifier) : $client->deactivateWorker($this->identifier);
            $written = true;
        }
        if ($this->settings != ($this->attributes['settings'] ?? [])) {
            $client->updateWorkerSettings($this->identifier, $this->settings);
            $written = true;
        }
        if ($written) {
            $this->fill($client->worker($this->identifier)->toArray());
        }
        return $written;
    }

    /** Any other field of the API's worker. */
    public function __get(string $name): mixed
    {
        return $this->attributes[$name] ?? null;
    }

    public function __isset(string $name): bool
    {
        return isset($this->attributes[$name]);
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return $this->attributes;
    }

    public function jsonSerialize(): array
    {
        return $this->attributes;
    }

    /** @param array<string, mixed> $a */
    private function fill(array $a): void
    {
        $this->attributes = $a;
        $this->id = (int) ($a['id'] ?? 0);
        $this->uuid = (string) ($a['uuid'] ?? '');
        $this->identifier = (string) $a['identifier'];
        $this->scope = (string) ($a['scope'] ?? '');
        $this->title = (string) ($a['title'] ?? '');
        $this->description = (string) ($a['description'] ?? '');
        $this->active = (bool) ($a['active'] ?? false);
        $this->class = (string) ($a['class'] ?? '');
        $this->position = (int) ($a['position'] ?? 0);
        $this->hidden = (int) ($a['hidden'] ?? 0);
        $this->settings = is_array($a['settings'] ?? null) ? $a['settings'] : [];
        $this->default_settings = is_array($a['default_settings'] ?? null) ? $a['default_settings'] : [];
        $this->actions = is_array($a['actions'] ?? null) ? $a['actions'] : [];
        $this->state = (string) ($a['state'] ?? '');
    }
}
